// The control API's wire format: what the agent PUTs to /v1/table, checked field by field.
// Durations are milliseconds and sizes bytes here; the manifest's "30s"/"100MB" are parsed by the agent.
import type { RouteSettings, Upstream } from "./routes.ts";

export interface RouteRequest extends RouteSettings {
  upstreams: Upstream[];
  /** Serve HTTPS on this port with these PEM files (reloaded when they change); null: plain HTTP. */
  tls?: { cert: string; key: string } | null;
  /** One JSON line per request on stdout for this port. */
  accessLog?: boolean;
}

export const DEFAULTS = { listen: "0.0.0.0", drainMs: 30_000, holdMs: 10_000, maxBody: 100 * 1024 * 1024 } as const;

/** {routes: [...]} -> routes with defaults filled in, or the first problem (naming its field). */
export function parseTable(raw: unknown): { ok: true; routes: RouteRequest[]; accessLog: boolean } | { ok: false; error: string } {
  if (!isObject(raw) || !Array.isArray(raw.routes)) return { ok: false, error: "expected {routes: [...]}" };
  if (raw.accessLog !== undefined && typeof raw.accessLog !== "boolean") return { ok: false, error: "accessLog: expected true or false (every route's requests to stdout)" };
  const routes: RouteRequest[] = [];
  const seen = new Set<number>();
  const upstreamPorts = new Set<number>();
  for (const [i, r] of raw.routes.entries()) {
    const at = `routes[${i}]`;
    if (!isObject(r)) return { ok: false, error: `${at}: expected an object` };
    if (!isPort(r.port)) return { ok: false, error: `${at}.port: expected a port number 1-65535` };
    if (seen.has(r.port)) return { ok: false, error: `${at}.port: ${r.port} is listed twice; one route per port` };
    seen.add(r.port);
    const listen = r.listen ?? DEFAULTS.listen;
    if (typeof listen !== "string" || listen === "") return { ok: false, error: `${at}.listen: expected an address such as 0.0.0.0` };
    const health = r.health ?? null;
    if (health !== null && (typeof health !== "string" || !health.startsWith("/"))) return { ok: false, error: `${at}.health: expected a URL path starting with /` };
    const num = (k: string, d: number) => (r[k] === undefined ? d : r[k]);
    const drainMs = num("drainMs", DEFAULTS.drainMs), holdMs = num("holdMs", DEFAULTS.holdMs), maxBody = num("maxBody", DEFAULTS.maxBody);
    for (const [k, v] of [["drainMs", drainMs], ["holdMs", holdMs], ["maxBody", maxBody]] as const) {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) return { ok: false, error: `${at}.${k}: expected a whole number >= 0` };
    }
    if (!Array.isArray(r.upstreams)) return { ok: false, error: `${at}.upstreams: expected a list of {id, port}` };
    const upstreams: { id: string; port: number }[] = [];
    for (const [j, u] of r.upstreams.entries()) {
      const uat = `${at}.upstreams[${j}]`;
      if (!isObject(u) || typeof u.id !== "string" || !isPort(u.port)) return { ok: false, error: `${uat}: expected {id: string, port: 1-65535}` };
      if (upstreamPorts.has(u.port) || seen.has(u.port)) return { ok: false, error: `${uat}.port: ${u.port} is already used; every instance needs its own loopback port` };
      upstreamPorts.add(u.port);
      upstreams.push({ id: u.id, port: u.port });
    }
    const tls = r.tls ?? null;
    if (tls !== null && (!isObject(tls) || typeof tls.cert !== "string" || tls.cert === "" || typeof tls.key !== "string" || tls.key === "")) {
      return { ok: false, error: `${at}.tls: expected {cert: "/path/cert.pem", key: "/path/key.pem"} (PEM files the front can read)` };
    }
    const accessLog = r.accessLog ?? false;
    if (typeof accessLog !== "boolean") return { ok: false, error: `${at}.accessLog: expected true or false` };
    routes.push({
      port: r.port, listen, health, drainMs: drainMs as number, holdMs: holdMs as number, maxBody: maxBody as number, upstreams,
      tls: tls === null ? null : { cert: tls.cert as string, key: tls.key as string }, accessLog,
    });
  }
  for (const r of routes) if (upstreamPorts.has(r.port)) return { ok: false, error: `routes: port ${r.port} is both a public port and an upstream` };
  return { ok: true, routes, accessLog: raw.accessLog === true };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isPort(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;
}
