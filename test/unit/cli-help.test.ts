// Every command of DESIGN.md's table exists, and its --help has a usage line and an example;
// what the commands print keeps secrets out.
import { describe, expect, test } from "bun:test";
import { COMMANDS } from "../../agent/cli/index.ts";
import { withoutCredentials } from "../../agent/cli/run.ts";

const DESIGN = ["run", "once", "status", "plan", "validate", "schema", "sync", "pause", "resume", "rollback", "logs", "history", "verify", "front", "version"];

describe("command line", () => {
  test("every command of the design exists, and no other", () => {
    expect(COMMANDS.map((c) => c.name).sort()).toEqual([...DESIGN].sort());
  });
  for (const c of COMMANDS) {
    test(`agent ${c.name} --help: usage and an example`, () => {
      expect(c.help).toContain(`Usage: agent ${c.name}`);
      expect(c.help).toMatch(/Examples?:\n\s+agent /);
      expect(c.summary.length).toBeGreaterThan(10);
    });
  }
});

test("the repository URL is logged without its credentials", () => {
  expect(withoutCredentials("https://x-access-token:ghp_SECRET@git.example.com/acme/ops.git")).toBe("https://git.example.com/acme/ops.git");
  expect(withoutCredentials("http://127.0.0.1:8000/ops.git")).toBe("http://127.0.0.1:8000/ops.git");
});

test("--help (or -h) anywhere before `--` prints the command's help and runs nothing", async () => {
  const { main } = await import("../../agent/main.ts");
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => { out.push(String(s)); return true; }) as typeof process.stdout.write;
  try {
    expect(await main(["once", "--config", "/nonexistent.yaml", "--help"])).toBe(0);
    expect(await main(["logs", "-h"])).toBe(0);
  } finally {
    process.stdout.write = write;
  }
  expect(out.join("")).toContain("Usage: agent once");
  expect(out.join("")).toContain("Usage: agent logs");
});
