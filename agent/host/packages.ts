// Debian/Ubuntu packages behind a small interface: which are missing, install them with apt-get.
// Tests use MemoryPackages; the real one needs root and runs non-interactively.
import { AgentError } from "../core/errors.ts";
import { exec } from "./exec.ts";

export interface PackageManager {
  /** The names among `names` that are not installed. Read-only. */
  missing(names: string[]): Promise<string[]>;
  /** Install `names`; throws AgentError "PackagesFailed" with the tail of apt's output. */
  install(names: string[]): Promise<void>;
}

const APT_ENV = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" };

export class AptPackages implements PackageManager {
  constructor(private readonly opts: { logFile?: string; timeoutMs?: number } = {}) {}

  async missing(names: string[]): Promise<string[]> {
    if (!names.length) return [];
    const r = await exec(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", ...names], { env: APT_ENV, timeoutMs: 60_000 });
    const installed = new Set(r.stdout.split("\n").filter((l) => l.endsWith(" installed")).map((l) => l.split(" ")[0]!.split(":")[0]));
    return names.filter((n) => !installed.has(n));
  }

  async install(names: string[]): Promise<void> {
    if (!names.length) return;
    const timeoutMs = this.opts.timeoutMs ?? 15 * 60_000;
    const run = (argv: string[]) => exec(argv, { env: APT_ENV, timeoutMs, logFile: this.opts.logFile });
    let r = await run(["apt-get", "install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold", ...names]);
    if (r.code !== 0) {
      await run(["apt-get", "update"]);
      r = await run(["apt-get", "install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold", ...names]);
    }
    if (r.code !== 0) {
      const tail = (r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ");
      throw new AgentError("PackagesFailed",
        `apt-get install ${names.join(" ")} failed (exit ${r.code}${r.timedOut ? ", timed out" : ""})${tail ? `: ${tail}` : ""}; check the package names in the role and the node's apt sources`);
    }
  }
}

/** In memory, for tests: `installed` is the world; `fail` names make install throw. */
export class MemoryPackages implements PackageManager {
  readonly installs: string[][] = [];
  constructor(readonly installed = new Set<string>(), readonly fail = new Set<string>()) {}
  async missing(names: string[]) { return names.filter((n) => !this.installed.has(n)); }
  async install(names: string[]) {
    const bad = names.filter((n) => this.fail.has(n));
    if (bad.length) throw new AgentError("PackagesFailed", `apt-get install ${bad.join(" ")} failed: unable to locate package; check the package names in the role`);
    this.installs.push(names);
    for (const n of names) this.installed.add(n);
  }
}
