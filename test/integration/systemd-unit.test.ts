// scripts/agent.service as systemd reads it: `systemd-analyze verify` finds nothing to complain
// about (an unknown or misplaced key is ignored by systemd, with only a warning), and the keys
// that keep the agent alive sit in the section where systemd honours them.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const UNIT = join(import.meta.dir, "../../scripts/agent.service");
const analyze = Bun.which("systemd-analyze");

/** The keys of each [Section] of a unit file. */
function sections(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let cur = "";
  for (const line of text.split("\n")) {
    const s = /^\[(\w+)\]\s*$/.exec(line);
    if (s) { cur = s[1]!; out[cur] = {}; continue; }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (kv && cur) out[cur]![kv[1]!] = kv[2]!;
  }
  return out;
}

test("the start limit is switched off in [Unit], where systemd reads it", () => {
  const s = sections(readFileSync(UNIT, "utf8"));
  expect(s.Unit?.StartLimitIntervalSec).toBe("0");
  expect(s.Service?.StartLimitIntervalSec).toBeUndefined();
  expect(s.Service?.Restart).toBe("always");
  expect(s.Service?.KillMode).toBe("process");
});

test.skipIf(!analyze)("systemd-analyze verify reports nothing (skips where systemd-analyze is absent)", () => {
  // verify also checks that ExecStart= exists: point it at a program this machine has.
  const dir = mkdtempSync(join(tmpdir(), "agent-unit-"));
  try {
    const text = readFileSync(UNIT, "utf8").replace(/^ExecStart=\/usr\/local\/bin\/agent /m, "ExecStart=/bin/true ");
    expect(text).toContain("ExecStart=/bin/true run");
    writeFileSync(join(dir, "agent.service"), text);
    const p = Bun.spawnSync([analyze!, "verify", join(dir, "agent.service")], { stderr: "pipe", stdout: "pipe" });
    expect(p.stderr.toString() + p.stdout.toString()).toBe("");
    expect(p.exitCode).toBe(0);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
if (!analyze) console.log("skip: systemd-analyze not installed (apt-get install systemd); the unit was not verified");
