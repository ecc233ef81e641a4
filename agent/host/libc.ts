// The few C library calls Bun has no API for (flock for the state lock, madvise to give back
// start-up pages), through bun:ffi, loaded once on first use.
import { dlopen, FFIType, read } from "bun:ffi";

export interface Libc {
  flock(fd: number, op: number): number;
  madvise(addr: number, length: number, advice: number): number;
  /** errno of the last failed call on this thread. */
  errno(): number;
}

let libc: Libc | null = null;

export function loadLibc(): Libc {
  if (libc) return libc;
  let lastError: unknown;
  for (const name of ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"]) {
    try {
      const l = dlopen(name, {
        flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
        madvise: { args: [FFIType.u64, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
        __errno_location: { args: [], returns: FFIType.ptr },
      });
      libc = {
        flock: (fd, op) => l.symbols.flock(fd, op),
        madvise: (addr, length, advice) => l.symbols.madvise(addr, length, advice),
        errno: () => read.i32(l.symbols.__errno_location()!, 0),
      };
      return libc;
    } catch (e) { lastError = e; }
  }
  throw new Error(`cannot load the C library (flock, madvise): ${(lastError as Error)?.message}`);
}
