// The agent carries the Bun runtime: when the node has no `bun` of its own, setup steps, hooks
// and processes get the agent's (a `bun` shim that runs the agent binary with BUN_BE_BUN=1).
// An installed bun always wins: the shim's directory goes at the end of PATH.
// The roles' users must be able to execute that runtime wherever the agent binary lives (a
// checkout under root's 0700 home, say): when they cannot reach it, the agent offers a hard link
// (or a copy) of it in <stateDir>/bin, which is root's and mode 0755. It also explains a program
// a role's user cannot reach: the first directory on the way that the user cannot search.
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, type Stats } from "node:fs";
import { delimiter, dirname, isAbsolute, join, resolve, sep } from "node:path";
import { writeFileAtomic } from "./files.ts";

/** True inside the compiled binary (its modules live in Bun's embedded file system). */
export const isCompiled = (): boolean => Bun.main.startsWith("/$bunfs/");

/** The runtime's name in binDir when the original is out of the roles' reach. */
export const RUNTIME_COPY = "agent-runtime";

/**
 * Write <binDir>/bun (idempotent) and return the PATH that ends with binDir. Outside the compiled
 * binary (tests from source, development) the bun that runs us is used instead. Either one is
 * linked or copied into binDir first when some user could not execute it where it is.
 */
export function offerRuntime(binDir: string, path = process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin"): string {
  mkdirSync(binDir, { recursive: true, mode: 0o755 });
  const runtime = reachableRuntime(process.execPath, binDir);
  const shim = join(binDir, "bun");
  const text = isCompiled()
    ? `#!/bin/sh\n# The agent's own Bun runtime, offered to roles when the node has no bun.\nBUN_BE_BUN=1 exec '${runtime}' "$@"\n`
    : `#!/bin/sh\nexec '${runtime}' "$@"\n`;
  if (!existsSync(shim) || readFileSync(shim, "utf8") !== text) writeFileAtomic(shim, text, 0o755);
  chmodSync(shim, 0o755);
  const parts = path.split(delimiter).filter((p) => p && p !== binDir);
  return [...parts, binDir].join(delimiter);
}

/**
 * `program` itself when every user can execute it (each directory above it searchable by others,
 * the file executable by others: /usr/local/bin/agent on a node); otherwise <binDir>/agent-runtime,
 * a hard link to it (same inode, nothing copied; a copy across file systems), refreshed when the
 * program changes. binDir must be searchable by everyone. Idempotent.
 */
export function reachableRuntime(program: string, binDir: string): string {
  const src = statSync(program);
  if (everyoneCanRun(program, src)) return program;
  const dst = join(binDir, RUNTIME_COPY);
  const cur = statOrNull(dst);
  const sameFile = cur && cur.ino === src.ino && cur.dev === src.dev;
  const sameCopy = cur && !sameFile && cur.size === src.size && cur.mtimeMs === src.mtimeMs;
  if (cur && (sameFile || sameCopy) && (cur.mode & 0o005) === 0o005) return dst;
  const tmp = join(binDir, `.${RUNTIME_COPY}.tmp-${process.pid}`);
  rmSync(tmp, { force: true });
  try {
    // A hard link shares the mode too: link only a file that others may already execute.
    if ((src.mode & 0o005) === 0o005) {
      try { linkSync(program, tmp); } catch { copyRuntime(program, tmp, src); }
    } else copyRuntime(program, tmp, src);
    renameSync(tmp, dst);   // never written in place: a running copy would be ETXTBSY
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return dst;
}

function copyRuntime(program: string, tmp: string, src: Stats): void {
  copyFileSync(program, tmp);
  chmodSync(tmp, 0o755);
  utimesSync(tmp, src.atime, src.mtime);   // size + mtime say "unchanged" at the next start
}

/** Can any user execute `program`: others may search every directory above it and execute it. */
function everyoneCanRun(program: string, st: Stats): boolean {
  if ((st.mode & 0o001) === 0) return false;
  for (let d = dirname(resolve(program)); ; d = dirname(d)) {
    const s = statOrNull(d);
    if (!s || (s.mode & 0o001) === 0) return false;
    if (d === dirname(d)) return true;
  }
}

export interface RunAs { name?: string; uid: number; gid: number }

/**
 * Why `user` cannot execute `program` (an absolute path, or a name looked up on `pathEnv`), as a
 * sentence naming the first directory it cannot search, or the file it cannot execute; null when
 * the mode bits allow it (or the program is not there). Read-only: for an EACCES from a spawn.
 */
export function explainUnreachable(program: string, user: RunAs, pathEnv = process.env.PATH ?? "", cwd = process.cwd()): string | null {
  const who = `${user.name ?? "uid " + user.uid} (uid ${user.uid})`;
  const groups = groupsOf(user);
  const allowed = (s: Stats, bit: number) =>
    user.uid === 0 || (s.uid === user.uid ? (s.mode & (bit << 6)) !== 0 : groups.has(s.gid) ? (s.mode & (bit << 3)) !== 0 : (s.mode & bit) !== 0);
  const candidates = program.includes("/") ? [resolve(cwd, program)] : pathEnv.split(delimiter).filter((d) => d && isAbsolute(d)).map((d) => join(d, program));
  for (const file of candidates) {
    const st = statOrNull(file);
    if (!st) continue;
    const parts = file.split(sep).filter(Boolean);
    for (let i = 0; i < parts.length - 1; i++) {
      const dir = sep + parts.slice(0, i + 1).join(sep);
      const s = statOrNull(dir);
      if (s && !allowed(s, 0o1)) {
        return `${who} cannot search ${dir} (mode ${mode(s)}, owner uid ${s.uid}), a parent directory of ${file}; `
          + `install the program where that user can reach it, or allow it (chmod o+x ${dir})`;
      }
    }
    if (!allowed(st, 0o1)) return `${who} may not execute ${file} (mode ${mode(st)}, owner uid ${st.uid}); chmod o+x ${file}`;
  }
  return null;
}

const mode = (s: Stats) => (s.mode & 0o7777).toString(8).padStart(4, "0");

function statOrNull(p: string): Stats | null {
  try { return statSync(p); } catch { return null; }
}

/** The user's primary group and the groups in /etc/group that list it by name. */
function groupsOf(user: RunAs): Set<number> {
  const out = new Set([user.gid]);
  if (!user.name) return out;
  try {
    for (const line of readFileSync("/etc/group", "utf8").split("\n")) {
      const f = line.split(":");
      if (f.length >= 4 && f[3]!.split(",").includes(user.name)) out.add(Number(f[2]));
    }
  } catch {}
  return out;
}
