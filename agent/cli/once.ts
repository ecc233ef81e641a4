import { createLogger } from "../core/log.ts";
import { newMemory, tick } from "../loop/tick.ts";
import { wire } from "../loop/wire.ts";
import { reapOrphans } from "../state/releases.ts";
import { migrateLayout } from "../state/migrate.ts";
import { loadConfig, loadTrust } from "./config.ts";
import { CONFIG_HELP, CONFIG_OPTION, EXIT, parse, type Command } from "./command.ts";
import { holdStateDir } from "./lock.ts";

const help = `Usage: agent once [--config FILE] [--json]

Run one reconcile tick in the foreground: read the manifest at the branch tip, prepare and
switch to the pinned commit, start the role's processes and wait for them to be healthy.
Processes keep running after it exits (a later \`agent run\` adopts them).

It holds <stateDir>/agent.lock until it exits: while the daemon or another \`agent once\` or
\`agent plan\` holds it, it changes nothing and exits 75, naming the holder.

Exit codes: 0 converged; 1 not converged (the reason is printed); 2 usage; 75 another agent
holds the state directory.

Options:
${CONFIG_HELP}
      --json         print the status JSON instead of a sentence
  -h, --help         show this help

Example:
  agent once --config /etc/agent/agent.yaml && echo converged
`;

export const once: Command = {
  name: "once",
  summary: "one reconcile tick in the foreground; exit 0 when converged",
  help,
  async run(argv) {
    const a = parse(argv, { ...CONFIG_OPTION, json: { type: "boolean" } });
    const config = loadConfig(a.values.config);
    // One agent at a time per node, before anything is adopted or reaped.
    if (!holdStateDir("once", config.stateDir)) return EXIT.busy;
    const log = createLogger("agent");
    const w = wire(config, log, { trust: await loadTrust(config) });
    w.supervisor.adopt();
    migrateLayout(w.ports.layout);                 // records an agent before meta/ kept in the trees
    await reapOrphans(w.ports.layout);             // waits for setup steps or hooks a stopped agent left running
    const r = await tick(w.ports, newMemory(), { mode: "once" });
    w.supervisor.detach(); w.front.detach();       // processes keep running; the next agent adopts them
    if (a.values.json) process.stdout.write(JSON.stringify(r.status, null, 2) + "\n");
    else if (r.converged) process.stdout.write(`converged: ${r.status.current.commit?.slice(0, 12)} ${r.status.current.subject ?? ""}\n`);
    else process.stderr.write(`not converged (${r.status.phase}): ${r.error ? `${r.error.reason}: ${r.error.message}` : "processes or resources not ready yet"}\n`);
    return r.converged ? EXIT.ok : EXIT.failed;
  },
};
