// A stand-in for the ELBv2 (Elastic Load Balancing v2) Query API, for the calls the agent makes:
// RegisterTargets, DeregisterTargets, DescribeTargetHealth, DescribeTargetGroups,
// DescribeTargetGroupAttributes. Form POST, XML answers (<XResponse><XResult>), errors as
// <ErrorResponse><Error><Type><Code><Message>. A deregistered target stays `draining` for
// `drainMs`, then is gone. Faults: throttling and 5xx on demand. Every call is counted. 127.0.0.1 only.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { serveFromCli } from "./cli.ts";

export const ELBV2_XMLNS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

export interface Elbv2Target { id: string; port: number; state: "healthy" | "draining"; drainUntil?: number }
export interface Elbv2Group {
  arn: string; name: string; port: number;
  /** deregistration_delay.timeout_seconds (ELB's default 300). */
  delaySeconds: number;
  targets: Map<string, Elbv2Target>;
}
export interface Elbv2Faults {
  /** The next N requests answer 400 Throttling. */
  throttle: number;
  /** The next N requests answer 503 ServiceUnavailable. */
  fail5xx: number;
}
export interface Elbv2Call { action: string; params: Record<string, string>; status: number; accessKeyId: string }

export interface Elbv2Server {
  url: string; port: number;
  groups: Map<string, Elbv2Group>;
  addGroup(g: { arn: string; port?: number; delaySeconds?: number }): void;
  /** How long a deregistered target stays `draining` (the stand-in's clock; default 0). */
  drainMs: number;
  faults: Elbv2Faults;
  calls: Elbv2Call[];
  stop(): Promise<void>;
}

class Fault extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export function elbv2ErrorXml(code: string, message: string, type = "Sender"): string {
  return `<ErrorResponse xmlns="${ELBV2_XMLNS}"><Error><Type>${type}</Type><Code>${esc(code)}</Code><Message>${esc(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`;
}
const ok = (action: string, result: string) =>
  `<${action}Response xmlns="${ELBV2_XMLNS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`;

type Params = Record<string, string>;
const need = (p: Params, k: string) => { const v = p[k]; if (!v) throw new Fault(400, "ValidationError", `1 validation error detected: Value null at '${k}' failed to satisfy constraint: Member must not be null`); return v; };
/** Name.member.1, Name.member.2, … (awsQuery lists). */
function members(p: Params, name: string): string[] {
  const out: string[] = [];
  for (let i = 1; p[`${name}.member.${i}`] !== undefined || p[`${name}.member.${i}.Id`] !== undefined; i++) out.push(`${name}.member.${i}`);
  return out;
}
const targetsOf = (p: Params, group: Elbv2Group) => members(p, "Targets").map((m) => ({ id: need(p, `${m}.Id`), port: Number(p[`${m}.Port`] ?? group.port) }));

export async function startElbv2(opts: { port?: number } = {}): Promise<Elbv2Server> {
  const server = { groups: new Map(), drainMs: 0, faults: { throttle: 0, fail5xx: 0 }, calls: [] } as unknown as Elbv2Server;
  server.addGroup = (g) => {
    const name = /targetgroup\/([^/]+)\//.exec(g.arn)?.[1] ?? "tg";
    server.groups.set(g.arn, { arn: g.arn, name, port: g.port ?? 80, delaySeconds: g.delaySeconds ?? 300, targets: new Map() });
  };
  const groupOf = (p: Params) => {
    const arn = need(p, "TargetGroupArn");
    const g = server.groups.get(arn);
    if (!g) throw new Fault(400, "TargetGroupNotFound", `Target groups '${arn}' not found`);
    return g;
  };
  const settle = (g: Elbv2Group) => {
    for (const [k, t] of g.targets) if (t.state === "draining" && Date.now() >= (t.drainUntil ?? 0)) g.targets.delete(k);
  };
  const actions: Record<string, (p: Params) => string> = {
    RegisterTargets(p) {
      const g = groupOf(p);
      for (const t of targetsOf(p, g)) g.targets.set(`${t.id}:${t.port}`, { id: t.id, port: t.port, state: "healthy" });
      return "";
    },
    DeregisterTargets(p) {
      const g = groupOf(p);
      settle(g);
      for (const t of targetsOf(p, g)) {
        const have = g.targets.get(`${t.id}:${t.port}`);
        if (!have) continue;
        if (server.drainMs <= 0) g.targets.delete(`${t.id}:${t.port}`);
        else if (have.state !== "draining") Object.assign(have, { state: "draining", drainUntil: Date.now() + server.drainMs });
      }
      return "";
    },
    DescribeTargetHealth(p) {
      const g = groupOf(p);
      settle(g);
      const asked = targetsOf(p, g);
      const rows = asked.length ? asked.map((t) => g.targets.get(`${t.id}:${t.port}`) ?? { id: t.id, port: t.port, state: "unused" as const })
        : [...g.targets.values()];
      return `<TargetHealthDescriptions>${rows.map((t) => `<member><Target><Id>${esc(t.id)}</Id><Port>${t.port}</Port></Target><HealthCheckPort>${t.port}</HealthCheckPort>` +
        `<TargetHealth><State>${t.state}</State>${t.state === "unused" ? "<Reason>Target.NotRegistered</Reason><Description>Target is not registered to the target group</Description>"
          : t.state === "draining" ? "<Reason>Target.DeregistrationInProgress</Reason><Description>Target deregistration is in progress</Description>" : ""}</TargetHealth></member>`).join("")}</TargetHealthDescriptions>`;
    },
    DescribeTargetGroups(p) {
      const arns = members(p, "TargetGroupArns").map((m) => p[m]!);
      const found = arns.length ? arns.map((a) => { const g = server.groups.get(a); if (!g) throw new Fault(400, "TargetGroupNotFound", `One or more target groups not found`); return g; }) : [...server.groups.values()];
      return `<TargetGroups>${found.map((g) => `<member><TargetGroupArn>${esc(g.arn)}</TargetGroupArn><TargetGroupName>${esc(g.name)}</TargetGroupName><Protocol>HTTP</Protocol><Port>${g.port}</Port><TargetType>instance</TargetType></member>`).join("")}</TargetGroups>`;
    },
    DescribeTargetGroupAttributes(p) {
      const g = groupOf(p);
      return `<Attributes><member><Key>deregistration_delay.timeout_seconds</Key><Value>${g.delaySeconds}</Value></member><member><Key>stickiness.enabled</Key><Value>false</Value></member></Attributes>`;
    },
  };
  const http = Bun.serve({
    hostname: "127.0.0.1", port: opts.port ?? 0,
    async fetch(req) {
      const credential = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\//.exec(req.headers.get("authorization") ?? "");
      const xml = (status: number, body: string) => new Response(body, { status, headers: { "content-type": "text/xml" } });
      if (!credential) return xml(403, elbv2ErrorXml("MissingAuthenticationToken", "Request is missing Authentication Token"));
      const params: Params = Object.fromEntries(new URLSearchParams(req.method === "POST" ? await req.text() : new URL(req.url).search));
      const { Action: action = "", Version: _v, ...rest } = params;
      const call: Elbv2Call = { action, params: rest, status: 0, accessKeyId: credential[1]! };
      server.calls.push(call);
      const answer = (status: number, body: string) => { call.status = status; return xml(status, body); };
      const f = server.faults;
      if (f.throttle > 0) { f.throttle--; return answer(400, elbv2ErrorXml("Throttling", "Rate exceeded")); }
      if (f.fail5xx > 0) { f.fail5xx--; return answer(503, elbv2ErrorXml("ServiceUnavailable", "Service is unavailable", "Receiver")); }
      try {
        const h = actions[action];
        if (!h) throw new Fault(400, "InvalidAction", `Could not find operation ${action}`);
        return answer(200, ok(action, h(rest)));
      } catch (e) {
        if (e instanceof Fault) return answer(e.status, elbv2ErrorXml(e.code, e.message));
        return answer(500, elbv2ErrorXml("InternalFailure", String(e), "Receiver"));
      }
    },
  });
  server.port = http.port ?? 0;
  server.url = `http://127.0.0.1:${server.port}`;
  server.stop = async () => { await http.stop(true); };
  return server;
}

/** The seed file of the command line: { groups: [{arn, port, delaySeconds}], drainMs, faults }. */
export interface Elbv2Seed { groups?: { arn: string; port?: number; delaySeconds?: number }[]; drainMs?: number; faults?: Partial<Elbv2Faults> }

if (import.meta.main) {
  serveFromCli("elbv2", { port: { type: "string", default: "0" }, state: { type: "string" } }, async (v) => {
    const server = await startElbv2({ port: Number(v.port) });
    const seed = v.state ? JSON.parse(readFileSync(v.state, "utf8")) as Elbv2Seed : {};
    for (const g of seed.groups ?? []) server.addGroup(g);
    if (seed.drainMs !== undefined) server.drainMs = seed.drainMs;
    Object.assign(server.faults, seed.faults ?? {});
    return server;
  });
}
