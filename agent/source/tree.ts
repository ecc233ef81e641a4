// Writing a commit's tree into an empty directory, without what isomorphic-git's checkout does
// beside it (comparing with a work tree, stat-ing every file for an index, writing the index): a
// release directory is new and is never diffed. One cache for the whole walk, so the pack index is
// read once rather than for every blob.
import fs from "node:fs";
import { join } from "node:path";
import git from "isomorphic-git";

/** Write the tree of `commit` into `dir` (which exists and is empty). Returns the files written. */
export async function writeTree(gitdir: string, commit: string, dir: string): Promise<number> {
  const cache = {};
  const { commit: c } = await git.readCommit({ fs, gitdir, oid: commit, cache });
  let files = 0;
  const walk = async (oid: string, at: string): Promise<void> => {
    const { tree } = await git.readTree({ fs, gitdir, oid, cache });
    for (const e of tree) {
      const path = join(at, e.path);
      if (e.type === "tree") { fs.mkdirSync(path); await walk(e.oid, path); continue; }
      if (e.type === "commit") { fs.mkdirSync(path); continue; }   // a submodule: an empty directory, as git leaves it
      const { blob } = await git.readBlob({ fs, gitdir, oid: e.oid, cache });
      if (e.mode === "120000") fs.symlinkSync(Buffer.from(blob).toString("utf8"), path);
      else fs.writeFileSync(path, blob, { mode: e.mode === "100755" ? 0o755 : 0o644 });
      files++;
    }
  };
  await walk(c.tree, dir);
  return files;
}
