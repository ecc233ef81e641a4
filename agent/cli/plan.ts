import { AgentError } from "../core/errors.ts";
import { createLogger } from "../core/log.ts";
import { controlRequest, NOT_RUNNING } from "../control/client.ts";
import { planReport, type PlanReport } from "../loop/report.ts";
import { newMemory, tick } from "../loop/tick.ts";
import { wire } from "../loop/wire.ts";
import { layout } from "../state/layout.ts";
import { loadConfig, loadTrust } from "./config.ts";
import { CONFIG_HELP, CONFIG_OPTION, EXIT, parse, type Command } from "./command.ts";
import { holdStateDir } from "./lock.ts";
import { rolloutText } from "../status/render.ts";

const help = `Usage: agent plan [--config FILE] [--json]

Show what a tick would do now: observe the node and the repository, plan, and change nothing
(no release is prepared, no process started, no AWS resource touched). When the daemon runs, it
answers (it knows the processes it supervises); otherwise the command looks for itself, holding
<stateDir>/agent.lock meanwhile (it exits 75, naming the holder, while \`agent once\` runs).

Exit codes: 0 nothing to do; 1 there are actions (or the plan is blocked); 2 usage; 75 another
agent holds the state directory and the daemon does not answer.

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
    const config = loadConfig(a.values.config);
    let r = await fromDaemon(layout(config.stateDir).socket);
    if (!r) {
      const lock = holdStateDir("plan", config.stateDir);
      if (!lock) return EXIT.busy;
      try { r = await locally(config); } finally { lock.release(); }
    }
    if (a.values.json) {
      process.stdout.write(JSON.stringify(r, null, 2) + "\n");
    } else {
      process.stdout.write(`desired ${r.desired.commit?.slice(0, 12) ?? "?"}  current ${r.current.commit?.slice(0, 12) ?? "none"}\n`);
      if (!r.actions.length && !r.blocked) process.stdout.write("nothing to do: the node is converged\n");
      for (const x of r.actions) process.stdout.write(`  ${x.kind.padEnd(18)} ${x.description}\n`);
      if (r.rollout) process.stdout.write(`rollout ${rolloutText(r.rollout, false)}\n`);
      if (r.blocked) process.stdout.write(`blocked: ${r.blocked.reason}: ${r.blocked.message}\n`);
    }
    return r.actions.length || r.blocked || (r.rollout && r.rollout.decision !== "move") ? EXIT.failed : EXIT.ok;
  },
};

/** The daemon's plan, or null when no daemon runs (then this command may use the state dir itself). */
async function fromDaemon(socket: string): Promise<PlanReport | null> {
  try {
    const res = await controlRequest(socket, "GET", "/v1/plan", undefined, { timeoutMs: 60_000 });
    if (res.status !== 200) throw new AgentError("PlanFailed", `the agent could not plan: ${JSON.stringify(res.body)}`);
    return res.body as PlanReport;
  } catch (e) {
    if (e instanceof AgentError && e.reason === NOT_RUNNING) return null;
    throw e;
  }
}

async function locally(config: ReturnType<typeof loadConfig>): Promise<PlanReport> {
  const w = wire(config, createLogger("agent", { level: "warn" }), { trust: await loadTrust(config) });
  try {
    return planReport(await tick(w.ports, newMemory(), { mode: "once", dryRun: true }));
  } finally {
    w.supervisor.detach();
  }
}
