// The daemon (`agent run`) must never load isomorphic-git, yaml or zod: its git operations run in
// a child (`agent _source`, agent/source/child.ts), its config is parsed by `agent _config`
// (agent/cli/settings.ts); each of yaml and zod costs ~8 MB of idle RSS under Bun. This walks the static imports (not `import type`, not
// `await import(...)`, which the build splits into chunks loaded on demand) from the command table
// the daemon loads, and fails when a package that belongs in the child is reachable.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");

/** Packages statically reachable from `entry`, with one import chain to each (and the agent's own modules reached, in `modules`). */
export function staticPackages(entry: string, modules = new Set<string>()): Map<string, string[]> {
  const seen = modules, packages = new Map<string, string[]>();
  const walk = (file: string, chain: string[]) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    // `import x from "m"`, `import { a } from "m"`, `export { a } from "m"`, `import "m"`; never `import type` / `export type`.
    const re = /^\s*(import|export)\s+(?!type\s)(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm;
    for (const m of text.matchAll(re)) {
      const spec = m[2]!;
      if (spec.startsWith(".")) walk(resolve(dirname(file), spec), [...chain, file.slice(ROOT.length + 1)]);
      else if (!spec.startsWith("node:") && !spec.startsWith("bun")) {
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
        if (!packages.has(name)) packages.set(name, [...chain, file.slice(ROOT.length + 1)]);
      }
    }
  };
  walk(entry, []);
  return packages;
}

// `agent run` loads agent/cli/run.ts alone (agent/main.ts); the whole command table must not
// load the git library either (it is imported by every other command).
describe.each(["agent/cli/run.ts", "agent/cli/index.ts"])("the module graph of %s", (entry) => {
  const daemon = staticPackages(join(ROOT, entry));

  test("does not reach isomorphic-git (git operations run in `agent _source`)", () => {
    expect(daemon.get("isomorphic-git") ?? null).toBeNull();
  });

  test("does not reach openpgp or the AWS SDK (both are loaded on demand)", () => {
    const eager = [...daemon.keys()].filter((p) => p === "openpgp" || p.startsWith("@aws-sdk/"));
    expect(eager.map((p) => `${p} via ${daemon.get(p)!.join(" -> ")}`)).toEqual([]);
  });

  test("the walk sees a package when it is statically imported (the child does import isomorphic-git)", () => {
    expect(staticPackages(join(ROOT, "agent/source/child.ts")).has("isomorphic-git")).toBe(true);
  });
});

test("agent run reaches no package at all: yaml and zod stay out too (the config is parsed by `agent _config`, manifests and roles in `agent _source`)", () => {
  const daemon = staticPackages(join(ROOT, "agent/cli/run.ts"));
  expect([...daemon.keys()].map((p) => `${p} via ${daemon.get(p)!.join(" -> ")}`)).toEqual([]);
});

// Each module the daemon loads stays resident (docs/benchmarks.md): what a static node does not use
// between deploys is imported on demand, by the stage that needs it.
test("agent run does not load trust/, volumes, addresses, the rollout gate or the EC2 SDK wrapper until a node needs them", () => {
  const modules = new Set<string>();
  staticPackages(join(ROOT, "agent/cli/run.ts"), modules);
  const reached = [...modules].map((f) => f.slice(ROOT.length + 1));
  const lazy = ["agent/trust/trust.ts", "agent/trust/sshsig.ts", "agent/converge/volume.ts", "agent/plan/volume.ts", "agent/host/block.ts",
    "agent/converge/address.ts", "agent/plan/address.ts", "agent/loop/gate.ts", "agent/fleet/plan.ts", "agent/cloud/ec2.ts"];
  expect(lazy.filter((f) => reached.includes(f))).toEqual([]);
  expect(reached).toContain("agent/loop/tick.ts");   // the walk does follow the daemon's modules
});

// Bun loads a Node module's code when it is first used, and it stays resident: node:net alone added
// ~3.5 MB to a waiting program, node:crypto and node:url ~0.5 MB each (docs/benchmarks.md). The
// daemon uses Bun's own sockets, hashes and URL helpers instead.
test("agent run imports no Node module beyond node:fs, node:path and node:util (and bun:ffi for flock and madvise)", () => {
  const modules = new Set<string>();
  staticPackages(join(ROOT, "agent/cli/run.ts"), modules);
  const builtins = new Set<string>();
  for (const f of modules) {
    const text = readFileSync(f, "utf8");
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^"';]*?\s+from\s+)?["']((?:node:|bun:)[^"']+)["']/gm)) builtins.add(m[1]!);
  }
  expect([...builtins].sort()).toEqual(["bun:ffi", "node:fs", "node:path", "node:util"]);
});
