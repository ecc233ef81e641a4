import { createLogger } from "../core/log.ts";
import { newMemory, tick } from "../loop/tick.ts";
import { wire } from "../loop/wire.ts";
import { loadConfig } from "./config.ts";
import { CONFIG_HELP, CONFIG_OPTION, EXIT, parse, type Command } from "./command.ts";

const help = `Usage: agent plan [--config FILE] [--json]

Show what a tick would do now: observe the node and the repository, plan, and change nothing
(no release is prepared, no process started, no AWS resource touched).

Exit codes: 0 nothing to do; 1 there are actions (or the plan is blocked); 2 usage.

Options:
${CONFIG_HELP}
      --json         the actions as JSON
  -h, --help         show this help

Example:
  agent plan
`;

export const plan: Command = {
  name: "plan",
  summary: "what a tick would do now, changing nothing",
  help,
  async run(argv) {
    const a = parse(argv, { ...CONFIG_OPTION, json: { type: "boolean" } });
    if (a.values.help) { process.stdout.write(help); return EXIT.ok; }
    const config = loadConfig(a.values.config);
    const w = wire(config, createLogger("agent", { level: "warn" }));
    const r = await tick(w.ports, newMemory(), { mode: "once", dryRun: true });
    w.supervisor.detach();
    if (a.values.json) {
      process.stdout.write(JSON.stringify({ actions: r.actions, blocked: r.error ? { reason: r.error.reason, message: r.error.message } : null, desired: r.status.desired, current: r.status.current }, null, 2) + "\n");
    } else {
      const s = r.status;
      process.stdout.write(`desired ${s.desired.commit?.slice(0, 12) ?? "?"}  current ${s.current.commit?.slice(0, 12) ?? "none"}\n`);
      if (!r.actions.length) process.stdout.write(r.error ? "" : "nothing to do: the node is converged\n");
      for (const x of r.actions) process.stdout.write(`  ${x.kind.padEnd(18)} ${x.description}\n`);
      if (r.error) process.stdout.write(`blocked: ${r.error.reason}: ${r.error.message}\n`);
    }
    return r.actions.length || r.error ? EXIT.failed : EXIT.ok;
  },
};
