// GET /metrics over HTTP on the address the config names (default 127.0.0.1:9464). It serves
// the registry and nothing else; it never changes the node.
import { AgentError, errorMessage } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { CONTENT_TYPE, type Registry } from "./registry.ts";

export interface MetricsServer {
  url: string;       // http://host:port/metrics
  port: number;
  stop(): Promise<void>;
}

/** "127.0.0.1:9464" or "[::1]:9464" -> host and port; throws AgentError(MetricsAddressInvalid). */
export function parseListenAddress(addr: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):([0-9]{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw AgentError.terminal("MetricsAddressInvalid",
      `control.metrics must be HOST:PORT such as 127.0.0.1:9464 (or null to turn metrics off), not '${addr}'`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

/**
 * Serve the registry at GET /metrics on addr; null means metrics are off (returns null). Binds
 * exactly what the config says; a non-loopback address is logged as a warning, not refused.
 */
export function startMetricsServer(addr: string | null, registry: Registry, log?: Logger, extra?: () => Promise<string | null>): MetricsServer | null {
  if (addr === null) return null;
  const { host, port } = parseListenAddress(addr);
  const loopback = host === "localhost" || host === "::1" || /^127\./.test(host);
  if (!loopback) log?.warn("metrics listen on a non-loopback address: anyone who can reach it can read them", { addr });
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: host,
      port,
      async fetch(req) {
        const path = new URL(req.url).pathname;
        if (path !== "/metrics") return new Response("not found: try /metrics\n", { status: 404 });
        if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed\n", { status: 405 });
        // More series from elsewhere (the front's counts): appended as they are, never fatal.
        const more = extra ? await extra().catch(() => null) : null;
        return new Response(registry.render() + (more ? (more.endsWith("\n") ? more : more + "\n") : ""), { headers: { "content-type": CONTENT_TYPE } });
      },
    });
  } catch (e) {
    throw AgentError.terminal("MetricsListenFailed",
      `cannot serve metrics on ${addr}: ${errorMessage(e)}; change control.metrics in the config or set it to null`, e);
  }
  const bound = server.port ?? port;
  const shown = host.includes(":") ? `[${host}]` : host;
  log?.info("metrics listening", { url: `http://${shown}:${bound}/metrics` });
  return {
    url: `http://${shown}:${bound}/metrics`,
    port: bound,
    async stop() { await server.stop(true); },
  };
}
