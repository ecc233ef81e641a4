// Who holds the state dir lock, read from /proc/locks.
import { describe, expect, test } from "bun:test";
import { flockHolder } from "../../agent/host/lock.ts";

describe("flockHolder", () => {
  const locks = [
    "1: POSIX  ADVISORY  WRITE 900 fe:00:77 0 EOF",
    "2: FLOCK  ADVISORY  WRITE 1234 fe:00:2146695 0 EOF",
    "2: -> FLOCK  ADVISORY  WRITE 1300 fe:00:2146695 0 EOF",
    "3: FLOCK  ADVISORY  READ 555 fe:00:88 0 EOF",
  ].join("\n");
  test.each([
    [2146695, 1234],   // the holder, not the waiter
    [77, null],        // a POSIX (fcntl) lock is not ours
    [88, null],        // a shared lock is not ours
    [1, null],
  ])("inode %p -> pid %p", (ino, pid) => expect(flockHolder(ino, locks)).toBe(pid));
});
