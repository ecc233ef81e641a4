import { createLogger } from "../core/log.ts";
import { errorMessage } from "../core/errors.ts";
import { startControlServer } from "../control/server.ts";
import { createDaemon } from "../loop/daemon.ts";
import { wire } from "../loop/wire.ts";
import { reapOrphans } from "../state/releases.ts";
import { migrateLayout } from "../state/migrate.ts";
import { createAgentMetrics } from "../metrics/agent.ts";
import { startMetricsServer } from "../metrics/server.ts";
import { VERSION } from "../core/version.ts";
import { loadConfigApart, loadTrust } from "./settings.ts";
import { CONFIG_HELP, CONFIG_OPTION, EXIT, parse, type Command } from "./command.ts";
import { holdStateDir } from "./lock.ts";
import { pageOutExecutable, trimAfterTick, type TrimMemory } from "../host/trim.ts";

const help = `Usage: agent run [--config FILE]

The daemon: reconcile forever (poll the branch tip every \`poll\` of the manifest, with jitter),
supervise the role's processes, and answer \`agent status\`, \`sync\`, \`pause\`, \`resume\` and
\`rollback\` on the control socket (<stateDir>/agent.sock). Logs are JSON lines on stderr when
not on a terminal (journald), readable text on a terminal.

On SIGTERM or SIGINT it stops converging and exits, leaving the applications running; the next
\`agent run\` adopts them (the systemd unit uses KillMode=process for this).

One agent per state directory: it holds <stateDir>/agent.lock for its whole life, and refuses to
start (exit 75, naming the holder's pid and command) while another \`agent run\`, \`agent once\`
or \`agent plan\` holds it.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent run --config /etc/agent/agent.yaml
  systemctl enable --now agent      # scripts/agent.service
`;

export const run: Command = {
  name: "run",
  summary: "run the daemon: reconcile forever, supervise processes, serve the control socket",
  help,
  async run(argv) {
    const a = parse(argv, { ...CONFIG_OPTION });
    const config = await loadConfigApart(a.values.config);
    // Before anything reads state.json, adopts or reaps: another agent may be using this state dir.
    if (!holdStateDir("run", config.stateDir)) return EXIT.busy;
    const log = createLogger("agent");
    const metrics = createAgentMetrics({ version: VERSION });
    const trust = await loadTrust(config);
    const w = wire(config, log, { trust, onProcessEvent: (e) => { if (e.kind === "start" && restarted.delete(e.name)) metrics.processRestarts.inc({ process: e.name }); if (e.kind === "exit" && !e.requested) restarted.add(e.name); } });
    const restarted = new Set<string>();
    let trim: TrimMemory | null = process.env.AGENT_TRIM === "off" ? null : { busyAt: Date.now(), trimmedAt: null };
    const daemon = createDaemon(w.ports, {
      goodReleases: w.goodReleases,
      onTick: (r) => {
        metrics.recordTick(r.error ? "error" : "ok", r.status.lastTick.durationMs, Date.now());
        if (r.deploy) metrics.deploys.inc({ result: r.deploy });
        metrics.setCurrentCommit(r.status.current.commit, r.status.instance.role, r.status.instance.environment);
        metrics.paused.set(r.status.phase === "paused" ? 1 : 0);
        if (trim) trim = trimIdle(trim, r.converged && r.actions.length === 0, log);
      },
    });
    let control;
    try {
      // Under the lock no other agent of this version runs; the socket check still stops an older one.
      control = await startControlServer({ socketPath: w.ports.layout.socket, handlers: daemon.handlers, log: log.child("control") });
    } catch (e) {
      w.supervisor.detach(); w.front.detach();
      process.stderr.write(`agent run: ${errorMessage(e)}\n`);
      return EXIT.failed;
    }
    let metricsServer = null;
    try {
      metricsServer = startMetricsServer(config.control.metrics, metrics.registry, log.child("metrics"), () => w.front.metrics());
    } catch (e) {
      log.warn("metrics not served", { address: config.control.metrics, error: errorMessage(e) });
    }
    const adopted = w.supervisor.adopt();
    migrateLayout(w.ports.layout);                 // records an agent before meta/ kept in the trees
    const reaped = await reapOrphans(w.ports.layout);    // waits for setup steps or hooks a stopped agent left running
    if (reaped.length) log.info("killed setup steps or hooks a previous agent left running past their timeout", { pgids: reaped });
    const done = daemon.start();
    log.info("started", { config: config.path, stateDir: config.stateDir, repo: withoutCredentials(config.repo), branch: config.branch,
      adopted: adopted.adopted.length, dropped: adopted.dropped.length, pid: process.pid });

    await new Promise<void>((resolve) => {
      const stop = (sig: string) => { log.info("stopping; processes keep running", { signal: sig }); resolve(); };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    });
    daemon.stop();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([done, new Promise((r) => { timer = setTimeout(r, 10_000); })]);   // a tick stuck in I/O does not hold the exit
    clearTimeout(timer);
    await control.stop();
    await metricsServer?.stop();
    w.supervisor.detach(); w.front.detach();
    return EXIT.ok;
  },
};

/** After an idle tick: give back the binary's start-up pages once the node has been idle a while (host/trim.ts). */
function trimIdle(m: TrimMemory, idle: boolean, log: ReturnType<typeof createLogger>): TrimMemory {
  const t = trimAfterTick(m, { now: Date.now(), idle });
  if (!t.trim) return t.memory;
  const started = performance.now();
  const r = pageOutExecutable();
  const mb = (kb: number) => Math.round(kb / 102.4) / 10;
  if (r.skipped) log.debug("start-up pages not given back", { reason: r.skipped });
  else log.info("idle: gave back the binary's start-up pages", { rssBeforeMB: mb(r.rssBeforeKB), rssAfterMB: mb(r.rssAfterKB), durationMs: Math.round((performance.now() - started) * 10) / 10 });
  return r.unsupported ? { ...t.memory, trimmedAt: Infinity } : t.memory;   // never due again
}

/** A repository URL fit for logs: user and password (a token) removed. */
export function withoutCredentials(url: string): string {
  try {
    const u = new URL(url);
    u.username = ""; u.password = "";
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//");
  }
}
