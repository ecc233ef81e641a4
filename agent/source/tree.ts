// Writing a commit's tree into an empty directory, without what isomorphic-git's checkout does
// beside it (comparing with a work tree, stat-ing every file for an index, writing the index): a
// release directory is new and is never diffed. The commit and its trees are read by
// isomorphic-git (which refuses unsafe names such as `..` and `.git`); the blobs straight from the
// packs (pack.ts: checked against their ids), isomorphic-git only for one that is in no pack.
// Files are written a few at a time, so that the disk works while the next blob is inflated.
import fs from "node:fs";
import { join } from "node:path";
import git from "isomorphic-git";
import { PackReader } from "./pack.ts";

const PARALLEL = 16;

/**
 * Write the tree of `commit` into `dir` (which exists and is empty). Returns the files written.
 * `cache`: isomorphic-git's, shared with the caller's reads (the pack index is read once for the walk).
 */
export async function writeTree(gitdir: string, commit: string, dir: string, cache: object = {}): Promise<number> {
  Bun.gc(true);   // the fetch's garbage, when this process fetched: its peak is not added to the walk's
  const blobs = await listBlobs(gitdir, commit, dir, cache);
  const packs = PackReader.open(gitdir);
  const read = async (oid: string): Promise<Uint8Array> => {
    const o = packs.read(oid);
    if (!o) return (await git.readBlob({ fs, gitdir, oid, cache })).blob;
    if (o.type !== "blob") throw new Error(`${oid} is a ${o.type}, where the tree has a file`);
    return o.content;
  };
  let next = 0;
  const worker = async () => {
    while (next < blobs.length) {
      const b = blobs[next++]!;
      const blob = await read(b.oid);
      if (b.mode === "120000") await fs.promises.symlink(Buffer.from(blob).toString("utf8"), b.path);
      else await fs.promises.writeFile(b.path, blob, { mode: b.mode === "100755" ? 0o755 : 0o644 });
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, blobs.length) }, worker));
  return blobs.length;
}

/** Make the directories of `commit`'s tree under `dir`; the files to write in them. */
async function listBlobs(gitdir: string, commit: string, dir: string, cache: object): Promise<{ oid: string; path: string; mode: string }[]> {
  const { commit: c } = await git.readCommit({ fs, gitdir, oid: commit, cache });
  const blobs: { oid: string; path: string; mode: string }[] = [];
  const walk = async (oid: string, at: string): Promise<void> => {
    const { tree } = await git.readTree({ fs, gitdir, oid, cache });
    for (const e of tree) {
      const path = join(at, e.path);
      if (e.type === "tree") { fs.mkdirSync(path); await walk(e.oid, path); }
      else if (e.type === "commit") fs.mkdirSync(path);   // a submodule: an empty directory, as git leaves it
      else blobs.push({ oid: e.oid, path, mode: e.mode });
    }
  };
  await walk(c.tree, dir);
  return blobs;
}
