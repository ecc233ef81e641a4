// madvise(MADV_PAGEOUT) on a real process: the pages of its executable leave its RSS. The program
// runs from a fresh copy of the Bun binary, so no other process maps those pages (the kernel keeps
// pages that another process maps, and every test process here maps the usual Bun binary).
import { afterAll, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { join, resolve } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "trim-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const TRIM = resolve(import.meta.dir, "../../agent/host/trim.ts");
const [major = 0, minor = 0] = release().split(".").map(Number);
const kernelHasPageout = major > 5 || (major === 5 && minor >= 4);

test.skipIf(!kernelHasPageout)("pageOutExecutable gives the binary's pages back: RSS drops, nothing breaks after", () => {
  const bun = join(dir, "bun");
  copyFileSync(process.execPath, bun);
  chmodSync(bun, 0o755);
  const script = `import { pageOutExecutable } from ${JSON.stringify(TRIM)};
    const r = pageOutExecutable();
    // code runs on after the pages went: it faults back in from the file
    const again = JSON.parse(JSON.stringify({ ok: [1, 2, 3].map((x) => x * 2) }));
    console.log(JSON.stringify({ ...r, again }));`;
  const p = Bun.spawnSync([bun, "-e", script], { env: { ...process.env, BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" } });
  expect(p.stderr.toString()).toBe("");
  const r = JSON.parse(p.stdout.toString());
  console.log(`advised ${r.advisedBytes >> 20} MB; RSS ${r.rssBeforeKB >> 10} -> ${r.rssAfterKB >> 10} MB`);
  expect(r.skipped).toBeNull();
  expect(r.advisedBytes).toBeGreaterThan(10 * 1024 * 1024);            // the Bun binary's code and constants
  expect(r.rssBeforeKB - r.rssAfterKB).toBeGreaterThan(5 * 1024);      // at least 5 MB of its pages left the RSS
  expect(r.again).toEqual({ ok: [2, 4, 6] });
});
