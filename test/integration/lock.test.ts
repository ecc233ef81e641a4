// The state dir lock (flock(2) through bun:ffi) between two real processes.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { tryLock } from "../../agent/host/lock.ts";

const LOCK_TS = resolve(import.meta.dir, "../../agent/host/lock.ts");

describe("tryLock", () => {
  test("a second process is refused and told the holder's pid and command; after release it gets the lock", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-lock-"));
    const path = join(dir, "agent.lock");
    try {
      const mine = tryLock(path);
      if (!mine.ok) throw new Error("first lock refused");
      expect(JSON.parse(readFileSync(path, "utf8")).pid).toBe(process.pid);
      const probe = `const { tryLock } = await import(${JSON.stringify(LOCK_TS)}); const r = tryLock(${JSON.stringify(path)}); console.log(JSON.stringify(r.ok ? "locked" : r.holder));`;
      const ask = async () => {
        const p = Bun.spawn([process.execPath, "-e", probe], { stdout: "pipe", stderr: "inherit" });
        return JSON.parse(await new Response(p.stdout).text());
      };
      const held = await ask();
      expect(held.pid).toBe(process.pid);
      expect(held.command).toBe(readFileSync("/proc/self/cmdline", "utf8").split("\0").filter(Boolean).join(" "));
      expect(typeof held.since).toBe("string");
      mine.lock.release();
      expect(await ask()).toBe("locked");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
