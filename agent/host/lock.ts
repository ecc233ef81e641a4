// The state directory's lock: one agent (`run`, `once`, a daemon-less `plan`) uses a state dir at
// a time, from before it adopts or reaps anything until it exits. flock(2) through bun:ffi (Bun has
// no flock): the kernel drops the lock when its holder dies, SIGKILL included, so nothing is stale.
import { loadLibc } from "./libc.ts";
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";

const LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;
const EINTR = 4, EWOULDBLOCK = 11;
// Linux's value on x86-64 and arm64. Bun opens files close-on-exec already; say it anyway, since a
// supervised process outlives the agent on purpose and must never inherit (and so hold) the lock.
const O_CLOEXEC = 0o2000000;

/** Who holds a state dir: as written under the lock, checked against /proc/locks. */
export interface LockHolder {
  pid: number | null;
  command: string | null;
  since: string | null;
}

export interface StateLock {
  path: string;
  /** Drop the lock (exit does it too). Idempotent. */
  release(): void;
}

export type LockResult = { ok: true; lock: StateLock } | { ok: false; holder: LockHolder };

/**
 * Take the exclusive lock on `path` without waiting. On success the file holds this process's pid,
 * command line and start, for the next one to name. Throws only when locking itself is impossible.
 */
export function tryLock(path: string): LockResult {
  let c;
  try { c = loadLibc(); } catch (e) { throw new Error(`cannot lock the state directory: ${(e as Error).message}`); }
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | O_CLOEXEC, 0o600);
  let r: number;
  do r = c.flock(fd, LOCK_EX | LOCK_NB); while (r !== 0 && c.errno() === EINTR);
  if (r !== 0) {
    const errno = c.errno();
    if (errno !== EWOULDBLOCK) {
      closeSync(fd);
      throw new Error(`cannot lock ${path}: flock failed with errno ${errno}`);
    }
    const holder = readHolder(path, fstatSync(fd).ino);
    closeSync(fd);
    return { ok: false, holder };
  }
  const me: LockHolder = { pid: process.pid, command: commandOf(process.pid), since: new Date().toISOString() };
  const text = JSON.stringify(me) + "\n";
  ftruncateSync(fd, 0);
  writeSync(fd, text, 0);
  let held = true;
  return {
    ok: true,
    lock: {
      path,
      release() {
        if (!held) return;
        held = false;
        c.flock(fd, LOCK_UN);
        closeSync(fd);
      },
    },
  };
}

/** The holder named in the file, unless /proc/locks says another pid holds it (then that one). */
function readHolder(path: string, ino: number): LockHolder {
  let file: Partial<LockHolder> = {};
  try { file = JSON.parse(readFileSync(path, "utf8")); } catch {}   // empty: the holder has not written yet
  const pid = flockHolder(ino) ?? file.pid ?? null;
  if (pid !== null && pid === file.pid) return { pid, command: file.command ?? commandOf(pid), since: file.since ?? null };
  return { pid, command: pid === null ? null : commandOf(pid), since: null };
}

/** The pid that holds a FLOCK on inode `ino`, from /proc/locks ("1: FLOCK ADVISORY WRITE 123 fe:00:456 0 EOF"). */
export function flockHolder(ino: number, text?: string): number | null {
  try { text ??= readFileSync("/proc/locks", "utf8"); } catch { return null; }
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[1] !== "FLOCK" || f[3] !== "WRITE") continue;
    if (Number(f[5]?.split(":")[2]) === ino) return Number(f[4]) || null;
  }
  return null;
}

/** A process's command line, arguments joined by spaces; null when it is gone. */
export function commandOf(pid: number): string | null {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    return argv.length ? argv.join(" ") : null;
  } catch { return null; }
}
