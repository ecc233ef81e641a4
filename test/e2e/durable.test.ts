// state.json, status.json and `current` survive a power cut: each is written to a temp name,
// fsynced, renamed into place, and then the directory is fsynced (the rename lives in the
// directory). A power cut cannot be staged in a test; what can be checked is that the compiled
// agent makes these system calls in this order, observed with strace (the test skips without it).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AGENT, makeKit, type Kit } from "./kit.ts";

const strace = Bun.which("strace");
if (!strace) console.log("skip: strace is not installed (apt-get install strace); the fsync order was not observed");

let k: Kit;
beforeAll(async () => { if (strace) k = await makeKit("durable"); });
afterAll(async () => { await k?.stop(); });

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

test.skipIf(!strace)("`agent once` fsyncs each file, renames it into place, then fsyncs the state directory", async () => {
  await k.release({ VERSION: "v1\n" }, "v1");
  const trace = join(k.dir, "trace");
  // No -f: the agent's own (JS) thread writes these files; the applications it starts are not traced.
  const p = Bun.spawn([strace!, "-y", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", "-o", trace, AGENT, "once"], {
    env: { ...process.env, AGENT_CONFIG: k.config, NO_COLOR: "1" }, stdout: "pipe", stderr: "pipe",
  });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  expect(err).not.toContain("not converged");
  expect(code).toBe(0);
  const lines = readFileSync(trace, "utf8").split("\n");
  const dirSync = new RegExp(`^f(data)?sync\\(\\d+<${esc(k.state)}>\\) = 0`);
  for (const name of ["state.json", "status.json", "current"]) {
    const target = join(k.state, name);
    const renames = lines.flatMap((l, i) => new RegExp(`rename(at2?)?\\(.*"(${esc(join(k.state, `.${name}.tmp-`))}[^"]+)".*"${esc(target)}".*\\) = 0`).test(l) ? [i] : []);
    expect(renames.length, `${name} renamed into place`).toBeGreaterThan(0);
    for (const i of renames) {
      const tmp = /"([^"]+\.tmp-[^"]+)"/.exec(lines[i]!)![1]!;
      if (name !== "current") {   // a symlink has no data of its own to sync
        const fileSync = lines.slice(0, i).findLastIndex((l) => l.startsWith("fsync(") && l.includes(`<${tmp}>`));
        expect(fileSync, `${name}: the temp file is fsynced before the rename`).toBeGreaterThanOrEqual(0);
      }
      // the first rename or directory sync after this rename is a sync of the directory
      const next = lines.slice(i + 1).find((l) => l.startsWith("rename") || dirSync.test(l));
      expect(next !== undefined && dirSync.test(next), `${name}: the directory is fsynced after the rename, before anything else is renamed`).toBe(true);
    }
  }
});
