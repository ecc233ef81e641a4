// Upgrading a node in place: agents before meta/ kept each release's record, log and running
// group in releases/<commit>/.agent/ and the history in releases/.history.jsonl. Move them to
// meta/ once, at start, before anything reads them. Only regular files are carried, read without
// following links (the old directory was the role's user's); the old .agent is then removed.
import { closeSync, constants, existsSync, fstatSync, lstatSync, openSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../host/files.ts";
import type { Layout } from "./layout.ts";
import { ensureMetaDir } from "./releases.ts";

const COMMIT_RE = /^[0-9a-f]{40}$/;
const CARRIED = ["release.json", "release.log", "running.group"] as const;

/** Move records from the layout before meta/; returns the commits whose records moved. Idempotent. */
export function migrateLayout(l: Layout): string[] {
  const moved: string[] = [];
  if (!existsSync(l.releases)) return moved;
  for (const c of readdirSync(l.releases)) {
    if (!COMMIT_RE.test(c)) continue;
    const old = join(l.release(c), ".agent");
    const st = lstatSync(old, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) {
      const dest = ensureMetaDir(l, c);
      for (const name of CARRIED) {
        const to = join(dest, name);
        if (existsSync(to)) continue;           // already moved (a start interrupted mid-way)
        const data = readRegularFile(join(old, name));
        if (data === null) continue;
        if (name === "running.group") {
          // The old file was the role's user's to write: drop an owner it may claim, so the reaper
          // checks the group against the tree's owner (who ran the step), never root.
          try { const { uid: _claimed, ...rec } = JSON.parse(data.toString("utf8")); writeFileAtomic(to, JSON.stringify(rec) + "\n", 0o600); } catch {}
        } else writeFileAtomic(to, data, 0o600);
      }
      moved.push(c);
    }
    rmSync(old, { recursive: true, force: true });   // a symlink is removed, never followed
  }
  const oldHistory = join(l.releases, ".history.jsonl");
  const hst = lstatSync(oldHistory, { throwIfNoEntry: false });
  if (hst?.isFile()) {
    ensureMetaDir(l);
    if (!existsSync(l.history)) renameSync(oldHistory, l.history);
    else {
      writeFileAtomic(l.history, readFileSync(oldHistory, "utf8") + readFileSync(l.history, "utf8"), 0o600);
      unlinkSync(oldHistory);
    }
  } else if (hst) rmSync(oldHistory, { force: true });
  return moved;
}

/** The file's bytes when it is a regular file (not a link, not a fifo), else null. */
function readRegularFile(path: string): Buffer | null {
  let fd: number;
  try { fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK); } catch { return null; }
  try {
    if (!fstatSync(fd).isFile()) return null;
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}
