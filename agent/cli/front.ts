// `agent front --state-dir DIR`: the long-lived HTTP front. The agent starts it from its own
// binary and supervises it like a role's process; it outlives agent restarts so the public
// sockets never close. It only forwards: the agent decides the table over the control socket.
import { mkdirSync } from "node:fs";
import { createLogger, type Logger } from "../core/log.ts";
import { UsageError } from "../core/errors.ts";
import { frontSocket } from "../front/client.ts";
import { Front } from "../front/server.ts";
import { HELPER_NICE, HelperThreads } from "../front/threads.ts";
import { parse, type Command } from "./command.ts";


const help = `Usage: agent front --state-dir DIR [--socket PATH] [--probe MS] [--access-log]

The HTTP front for the role's \`http:\` processes: listens on each http.port and forwards to
the instances on the loopback ports the agent chose, switching new requests to a new release
atomically while requests in flight on the old one finish. Started and supervised by
\`agent run\` (one per node, as root); it runs until SIGTERM and needs no other settings.

Control (unix socket, mode 0600, DIR/front.sock unless --socket):
  GET /v1/state   version, connections, ports, rate, rotation, upstreams (in flight, requests,
                  WebSockets), drains
  GET /v1/metrics Prometheus text (requests, upstream latency, connections, drains, rejections)
  GET /v1/table   the table as last PUT
  POST /v1/retire hand the ports over to a new front already listening: stop accepting, finish
                  what is in flight, exit
  PUT /v1/table   {routes: [{port, listen, health, drainMs, holdMs, maxBody, upstreams: [{id, port}]}]}

Options:
      --state-dir DIR  the agent's state directory (the control socket lives here)
      --socket PATH    the control socket (default: DIR/front.sock)
      --probe MS       how often each instance's http.health is probed (default 1000)
      --access-log     one JSON line per request on stdout (time, port, method, path, status,
                       upstream, ms, bytes); off by default
  -h, --help           show this help

The runtime's compiler and allocator threads run at nice 19, so that a request never waits for
them (AGENT_FRONT_NICE=off leaves them alone).

Examples:
  agent front --state-dir /var/lib/agent
  curl --unix-socket /var/lib/agent/front.sock http://front/v1/state
`;

export const front: Command = {
  name: "front",
  summary: "the long-lived HTTP front (started by the agent itself)",
  help,
  async run(argv) {
    const a = parse(argv, { "state-dir": { type: "string" }, socket: { type: "string" }, probe: { type: "string" }, "access-log": { type: "boolean" } });
    const dir = a.values["state-dir"];
    if (!dir) throw new UsageError("--state-dir DIR is required (the agent's state directory, e.g. /var/lib/agent)");
    const probeMs = a.values.probe === undefined ? 1000 : Number(a.values.probe);
    if (!Number.isInteger(probeMs) || probeMs < 10) throw new UsageError(`--probe: expected milliseconds >= 10, got ${a.values.probe}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // JSON lines through console.error: process.stderr (a Node stream, its isTTY included) would
    // add about 8 MB to the idle front's RSS (docs/benchmarks.md#front); the agent reads its stderr
    const log = createLogger("front", { json: true, color: false, write: (line) => console.error(line) });
    const f = new Front({ socket: a.values.socket ?? frontSocket(dir), log, probeMs, accessLog: a.values["access-log"] === true });
    f.start();
    log.info("front: started", { socket: a.values.socket ?? frontSocket(dir), pid: process.pid });
    const helpers = lowerHelpers(log);
    const why = await new Promise<string>((resolve) => {
      process.once("SIGTERM", () => resolve("signal"));
      process.once("SIGINT", () => resolve("signal"));
      void f.retired.then(() => resolve("retired"));
    });
    log.info(why === "retired" ? "front: retired after a handover" : "front: stopping; requests in flight finish");
    if (helpers) clearInterval(helpers);
    await f.stop(false);
    return 0;
  },
};

/** Every second, the runtime's new helper threads go to nice 19 (front/threads.ts); the first time is logged. */
function lowerHelpers(log: Logger): ReturnType<typeof setInterval> | null {
  if (process.env.AGENT_FRONT_NICE === "off") return null;
  const helpers = new HelperThreads();
  let told = false;
  const run = () => {
    const r = helpers.lower();
    if (r.lowered.length && !told) {
      told = true;
      log.info(`front: the runtime's helper threads run at nice ${HELPER_NICE}; requests go first`, { threads: r.lowered.map((t) => t.name).join(", ") });
    }
    for (const { task, error } of r.failed) log.warn(`front: could not lower thread ${task.name} (${task.tid}) to nice ${HELPER_NICE}`, { error });
  };
  run();
  return setInterval(run, 1000);
}
