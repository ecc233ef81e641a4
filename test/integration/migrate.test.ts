// Upgrading in place: records an older agent kept in releases/<commit>/.agent/ (the role's user's
// directory) move to meta/ once; only regular files are carried, never read through a link.
import { afterAll, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { layout } from "../../agent/state/layout.ts";
import { migrateLayout } from "../../agent/state/migrate.ts";
import { listReleases, pruneReleases, readHistory, readRelease, writeRelease, newRelease, markRelease } from "../../agent/state/releases.ts";

const dir = mkdtempSync(join(tmpdir(), "migrate-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const c = (n: number) => String(n).repeat(40);

test("records, logs, groups and history move to meta/; links are dropped, not followed; a claimed owner is dropped", () => {
  const l = layout(join(dir, "a"));
  const secret = join(dir, "secret");
  writeFileSync(secret, "root only\n");
  // a normal old release
  mkdirSync(join(l.release(c(1)), ".agent"), { recursive: true });
  writeFileSync(join(l.release(c(1)), ".agent", "release.json"), JSON.stringify({ ...newRelease(l, c(1), "one", 1), state: "good" }));
  writeFileSync(join(l.release(c(1)), ".agent", "release.log"), "$ build\n");
  writeFileSync(join(l.release(c(1)), ".agent", "running.group"), JSON.stringify({ pgid: 1234, startTime: 5, uid: 0 }));
  // the role's user replaced a record with a link to a root-only file
  mkdirSync(join(l.release(c(2)), ".agent"), { recursive: true });
  symlinkSync(secret, join(l.release(c(2)), ".agent", "release.log"));
  // and made .agent itself a link
  mkdirSync(l.release(c(3)), { recursive: true });
  const elsewhere = join(dir, "elsewhere");
  mkdirSync(elsewhere);
  writeFileSync(join(elsewhere, "release.json"), "{}");
  symlinkSync(elsewhere, join(l.release(c(3)), ".agent"));
  writeFileSync(join(l.releases, ".history.jsonl"), JSON.stringify({ commit: c(1), state: "good", at: 1 }) + "\n");

  expect(migrateLayout(l).sort()).toEqual([c(1), c(2)]);
  expect(readRelease(l, c(1))?.state).toBe("good");
  expect(readFileSync(l.releaseLog(c(1)), "utf8")).toBe("$ build\n");
  expect(JSON.parse(readFileSync(l.releaseGroup(c(1)), "utf8"))).toEqual({ pgid: 1234, startTime: 5 });
  expect(existsSync(l.releaseLog(c(2)))).toBe(false);                  // the link was not read through
  expect(readRelease(l, c(3))).toBeNull();
  expect(existsSync(join(elsewhere, "release.json"))).toBe(true);       // the link's target is untouched
  for (const n of [1, 2, 3]) expect(lstatSync(join(l.release(c(n)), ".agent"), { throwIfNoEntry: false })).toBeUndefined();
  expect(statSync(l.releaseMetaDir(c(1))).mode & 0o777).toBe(0o700);
  expect(readHistory(l).map((e) => e.commit)).toEqual([c(1)]);
  expect(existsSync(join(l.releases, ".history.jsonl"))).toBe(false);
  expect(migrateLayout(l)).toEqual([]);                                 // idempotent
  expect(readFileSync(secret, "utf8")).toBe("root only\n");
});

test("a commit refused before it had a tree counts as a failed release and is pruned with the rest", () => {
  const l = layout(join(dir, "b"));
  for (let i = 1; i <= 5; i++) {
    const commit = c(i);
    if (i !== 5) mkdirSync(l.release(commit), { recursive: true });
    writeRelease(l, newRelease(l, commit, null, i));
    markRelease(l, commit, "failed", i * 10, { reason: i === 5 ? "ReleaseRefused" : "SetupFailed", message: "x" });
  }
  expect(listReleases(l).map((r) => r.commit)).toContain(c(5));
  expect(pruneReleases(l, [], { keepGood: 5, keepFailed: 3, keepReady: 1 }).sort()).toEqual([c(1), c(2)]);
  expect(existsSync(l.releaseMetaDir(c(1)))).toBe(false);
  expect(readRelease(l, c(5))?.reason).toBe("ReleaseRefused");        // newest failure: kept
});
