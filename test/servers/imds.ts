// A stand-in for the EC2 instance metadata service, IMDSv2 only: a token PUT, then GETs carrying
// the token. One server per simulated node; its identity and tags are mutable while it runs, and
// faults (down, refused token, delay) are switched on by tests. Listens on 127.0.0.1 only.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { serveFromCli } from "./cli.ts";

export interface ImdsNode {
  instanceId: string;
  region: string;
  zone: string;
  tags: Record<string, string>;
  /** Default true: tags exposed at latest/meta-data/tags/instance (InstanceMetadataTags=enabled). */
  tagsInMetadata?: boolean;
  /** Default "agent-node": serves latest/meta-data/iam/security-credentials/<role> with test keys. */
  iamRole?: string;
}

export interface ImdsFaults {
  /** Every request has its connection closed without an answer. */
  down: boolean;
  /** PUT /latest/api/token answers 403 (as when IMDS is disabled for tokens). */
  refuseToken: boolean;
  /** Every answer waits this long first. */
  delayMs: number;
}

export interface ImdsRequest { method: string; path: string; status: number }

export interface ImdsServer {
  url: string;
  port: number;
  /** Mutable: tests change tags (or anything else) live; the next request sees it. */
  node: ImdsNode;
  faults: ImdsFaults;
  /** Every request, in order; status 0 when the connection was closed without an answer. */
  requests: ImdsRequest[];
  stop(): Promise<void>;
}

/** The static keys served as the node's instance-role credentials. */
export const IMDS_TEST_CREDENTIALS = {
  accessKeyId: "ASIAIMDSTESTKEY00001",
  secretAccessKey: "imds-test-secret-access-key",
  sessionToken: "imds-test-session-token",
} as const;

export const IMDS_ACCOUNT_ID = "123456789012";
const MAX_TTL_SECONDS = 21600;

/** Starts a stand-in IMDS on 127.0.0.1 (port 0 = any free port). stop() closes every connection. */
export async function startImds(node: ImdsNode, opts: { port?: number } = {}): Promise<ImdsServer> {
  const tokens = new Map<string, number>(); // token -> expiry (epoch ms)
  const sockets = new Set<Socket>();
  const state: ImdsServer = {
    url: "",
    port: 0,
    node,
    faults: { down: false, refuseToken: false, delayMs: 0 },
    requests: [],
    stop: async () => {},
  };

  const http = createServer((req, res) => {
    void handle(state, tokens, req, res).catch((e) => {
      if (!res.headersSent) reply(res, 500, String(e));
    });
  });
  http.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  state.port = port;
  state.url = `http://127.0.0.1:${port}`;
  state.stop = () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    http.close(() => resolve());
  });
  return state;
}

async function handle(s: ImdsServer, tokens: Map<string, number>, req: IncomingMessage, res: ServerResponse) {
  const method = req.method ?? "GET";
  const path = normalise(req.url ?? "/");
  const record = (status: number) => s.requests.push({ method, path, status });
  req.resume(); // the body is never used; drain it
  if (s.faults.delayMs > 0) await new Promise((r) => setTimeout(r, s.faults.delayMs));
  if (s.faults.down) {
    record(0);
    req.socket.destroy();
    return;
  }
  if (path === "/latest/api/token") {
    if (method !== "PUT") return record(reply(res, 405, "Method Not Allowed"));
    if (s.faults.refuseToken) return record(reply(res, 403, "Forbidden"));
    if (req.headers["x-forwarded-for"]) return record(reply(res, 403, "Forbidden"));
    const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) return record(reply(res, 400, "Bad Request"));
    const now = Date.now();
    for (const [t, expiry] of tokens) if (expiry < now) tokens.delete(t);
    const token = randomUUID();
    tokens.set(token, now + ttl * 1000);
    res.setHeader("x-aws-ec2-metadata-token-ttl-seconds", String(ttl));
    return record(reply(res, 200, token));
  }
  if (method !== "GET" && method !== "HEAD") return record(reply(res, 405, "Method Not Allowed"));
  const token = req.headers["x-aws-ec2-metadata-token"];
  const expiry = typeof token === "string" ? tokens.get(token) : undefined;
  if (expiry === undefined || expiry < Date.now()) return record(reply(res, 401, "Unauthorized"));
  const body = lookup(metadata(s.node), path);
  if (body === undefined) return record(reply(res, 404, "Not Found"));
  return record(reply(res, 200, body));
}

function reply(res: ServerResponse, status: number, body: string): number {
  res.writeHead(status, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
  res.end(body);
  return status;
}

/** Collapse "//" (the SDK builds `pathname + path`), drop the query string. */
function normalise(url: string): string {
  const path = url.split("?")[0] ?? "/";
  return path.replace(/\/{2,}/g, "/");
}

/** Every leaf the node serves, by path without a leading slash. Directories are derived. */
function metadata(node: ImdsNode): Map<string, string> {
  const md = "latest/meta-data/";
  const role = node.iamRole ?? "agent-node";
  const now = new Date();
  const m = new Map<string, string>([
    [`${md}instance-id`, node.instanceId],
    [`${md}placement/region`, node.region],
    [`${md}placement/availability-zone`, node.zone],
    [`${md}ami-id`, "ami-0standin0000000"],
    [`${md}instance-type`, "t3.micro"],
    [`${md}iam/security-credentials/${role}`, JSON.stringify({
      Code: "Success",
      LastUpdated: now.toISOString(),
      Type: "AWS-HMAC",
      AccessKeyId: IMDS_TEST_CREDENTIALS.accessKeyId,
      SecretAccessKey: IMDS_TEST_CREDENTIALS.secretAccessKey,
      Token: IMDS_TEST_CREDENTIALS.sessionToken,
      Expiration: new Date(now.getTime() + 3600_000).toISOString(),
    })],
    ["latest/dynamic/instance-identity/document", JSON.stringify({
      accountId: IMDS_ACCOUNT_ID,
      architecture: "x86_64",
      availabilityZone: node.zone,
      imageId: "ami-0standin0000000",
      instanceId: node.instanceId,
      instanceType: "t3.micro",
      pendingTime: now.toISOString(),
      privateIp: "10.0.0.10",
      region: node.region,
      version: "2017-09-30",
    }, null, 2)],
  ]);
  if (node.tagsInMetadata !== false) {
    for (const [k, v] of Object.entries(node.tags)) m.set(`${md}tags/instance/${k}`, v);
  }
  return m;
}

/** A leaf's value, or a directory listing (children one per line, subdirectories with "/"). */
function lookup(m: Map<string, string>, path: string): string | undefined {
  const p = path.replace(/^\//, "");
  const leaf = m.get(p);
  if (leaf !== undefined) return leaf;
  const dir = p === "" || p.endsWith("/") ? p : `${p}/`;
  const children = new Set<string>();
  for (const key of m.keys()) {
    if (!key.startsWith(dir)) continue;
    const rest = key.slice(dir.length);
    const slash = rest.indexOf("/");
    children.add(slash < 0 ? rest : rest.slice(0, slash + 1));
  }
  if (children.size === 0) return undefined;
  return [...children].join("\n");
}

if (import.meta.main) {
  serveFromCli("imds", {
    port: { type: "string", default: "0" }, "instance-id": { type: "string", default: "i-0standin" },
    region: { type: "string", default: "us-east-1" }, zone: { type: "string", default: "us-east-1a" },
    "iam-role": { type: "string" }, "no-tags-in-metadata": { type: "boolean" }, tag: { type: "string", multiple: true },
  }, (v) => {
    const tags: Record<string, string> = {};
    for (const t of v.tag ?? []) {
      const eq = t.indexOf("=");
      if (eq <= 0) throw new Error(`--tag wants KEY=VALUE, got ${t}`);
      tags[t.slice(0, eq)] = t.slice(eq + 1);
    }
    return startImds({ instanceId: v["instance-id"], region: v.region, zone: v.zone, tags, iamRole: v["iam-role"],
      ...(v["no-tags-in-metadata"] ? { tagsInMetadata: false } : {}) }, { port: Number(v.port) });
  });
}
