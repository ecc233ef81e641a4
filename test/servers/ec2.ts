// A stand-in for the EC2 Query API (form POST, XML answers, <Errors> on failure), stateful, for the
// calls the agent makes. Volumes are sparse files; attaching one (as root) sets up a loop device and
// the NVMe by-id link a real EBS volume has. Faults: throttling, 5xx, attach delay; EC2's token
// buckets (ec2-limits.ts) and stale reads of tags. 127.0.0.1 only.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createSparseFile, detachLoop, byIdLinkName } from "./loop.ts";
import { ACTIONS } from "./ec2-actions.ts";
import { Buckets, EC2_LIMITS, TagViews, bucketOf, type Ec2Limits } from "./ec2-limits.ts";
import { Ec2Fault, errorXml, successXml, type Params } from "./ec2-wire.ts";
import { serveFromCli } from "./cli.ts";

export interface Ec2Instance {
  id: string; zone: string; tags: Record<string, string>; privateIp?: string;
  /** instance-state-name: pending | running (default) | shutting-down | terminated | stopping | stopped. */
  state?: string;
  /** LaunchTime; default: when the server started. */
  launchTime?: Date;
}
export interface Ec2Volume {
  id: string; zone: string; sizeMiB: number; tags: Record<string, string>;
  state: "available" | "in-use" | "creating";
  attachment?: { instanceId: string; device: string; state: "attaching" | "attached"; loop?: string };
}
export interface Ec2Address {
  allocationId: string; publicIp: string; instanceId?: string; associationId?: string; tags?: Record<string, string>;
}
export interface Ec2Faults {
  /** The next N requests answer 503 RequestLimitExceeded. */
  throttle: number;
  /** The next N requests answer 500 InternalError. */
  fail5xx: number;
  /** An attachment stays "attaching" this long before it becomes "attached". */
  attachDelayMs: number;
  /** The next N requests answer 200 with an empty <XResponse> (the SDK then parses {}). */
  empty200?: number;
}
export interface Ec2Call {
  action: string;
  /** Every form parameter except Action and Version. */
  params: Record<string, string>;
  /** The HTTP status the stand-in answered. */
  status: number;
  /** The access key id from the SigV4 Credential= of the request. */
  accessKeyId: string;
}

export interface Ec2Server {
  url: string; port: number;
  instances: Map<string, Ec2Instance>; volumes: Map<string, Ec2Volume>; addresses: Map<string, Ec2Address>;
  addInstance(i: Ec2Instance): void;
  /** Adds an available volume and creates its sparse backing file <dataDir>/<id>.img. */
  addVolume(v: { id: string; zone: string; sizeMiB: number; tags?: Record<string, string> }): void;
  addAddress(a: { allocationId: string; publicIp: string; tags?: Record<string, string> }): void;
  faults: Ec2Faults;
  /** EC2's token buckets, shared by every caller (default EC2_LIMITS); set a class to null to lift it. */
  limits: Ec2Limits;
  /** Tags a caller writes reach other callers (other access key ids) this much later (default 0). */
  staleTagsMs: number;
  /** Every signed request, in order (unsigned ones are refused before they are recorded). */
  calls: Ec2Call[];
  /** Whether attachments get loop devices and by-id links (root only). */
  readonly loopDevices: boolean;
  /** The backing file of a volume. */
  backingFile(volumeId: string): string;
  /** Finishes pending attachments' timers, unmounts and detaches every loop device it set up, removes by-id links. */
  stop(): Promise<void>;
}

/** What the handlers in ec2-actions.ts work on. */
export interface Ec2Context {
  server: Ec2Server;
  byIdDir: string;
  startedAt: Date;
  /** Schedules background work (attach completion) that stop() waits for or cancels. */
  later(ms: number, fn: () => Promise<void>): void;
  /** Removes a volume's by-id link and loop device, if it has them. */
  release(v: Ec2Volume): Promise<void>;
  /** What each caller sees of tags while writes are not yet visible to everyone (staleTagsMs). */
  tagViews: TagViews;
}

export interface Ec2Options {
  /** Volume backing files live here (created when missing). */
  dataDir: string;
  /** NVMe-style by-id links go here (created when missing); the agent is told to look here. */
  byIdDir: string;
  port?: number;
  /** Default: whether we run as root. False keeps attachments API-only. */
  loopDevices?: boolean;
}

/** Starts the stand-in on 127.0.0.1 (port 0 = any free port). */
export async function startEc2(opts: Ec2Options): Promise<Ec2Server> {
  mkdirSync(opts.dataDir, { recursive: true });
  mkdirSync(opts.byIdDir, { recursive: true });
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const pending = new Set<Promise<void>>();
  let stopping = false;

  const server: Ec2Server = {
    url: "", port: 0,
    instances: new Map(), volumes: new Map(), addresses: new Map(),
    addInstance(i) { server.instances.set(i.id, { ...i, tags: { ...i.tags } }); },
    addVolume(v) {
      createSparseFile(server.backingFile(v.id), v.sizeMiB);
      server.volumes.set(v.id, { id: v.id, zone: v.zone, sizeMiB: v.sizeMiB, tags: { ...v.tags }, state: "available" });
    },
    addAddress(a) { server.addresses.set(a.allocationId, { allocationId: a.allocationId, publicIp: a.publicIp, tags: { ...a.tags } }); },
    faults: { throttle: 0, fail5xx: 0, attachDelayMs: 0 },
    limits: structuredClone(EC2_LIMITS),
    staleTagsMs: 0,
    calls: [],
    loopDevices: opts.loopDevices ?? (typeof process.getuid === "function" && process.getuid() === 0),
    backingFile: (id) => join(opts.dataDir, `${id}.img`),
    stop: async () => {},
  };

  const buckets = new Buckets();
  const ctx: Ec2Context = {
    server,
    tagViews: new TagViews(),
    byIdDir: opts.byIdDir,
    startedAt: new Date(),
    later(ms, fn) {
      if (stopping) return;
      const t = setTimeout(() => {
        timers.delete(t);
        const p = fn().catch((e) => console.error(`ec2 stand-in: ${e instanceof Error ? e.message : String(e)}`));
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }, ms);
      timers.add(t);
    },
    async release(v) {
      rmSync(join(opts.byIdDir, byIdLinkName(v.id)), { force: true });
      const loop = v.attachment?.loop;
      if (loop) {
        delete v.attachment!.loop;
        await detachLoop(loop);
      }
    },
  };

  const http = Bun.serve({
    hostname: "127.0.0.1",
    port: opts.port ?? 0,
    fetch: (req) => handle(ctx, buckets, req),
  });
  server.port = http.port ?? 0;
  server.url = `http://127.0.0.1:${server.port}`;
  server.stop = async () => {
    stopping = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    await Promise.all([...pending]);
    await http.stop(true);
    for (const v of server.volumes.values()) await ctx.release(v);
  };
  return server;
}

async function handle(ctx: Ec2Context, buckets: Buckets, req: Request): Promise<Response> {
  const credential = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\//.exec(req.headers.get("authorization") ?? "");
  if (!credential) return xmlResponse(401, errorXml("AuthFailure", "AWS was not able to validate the provided access credentials (no SigV4 Authorization header)"));
  const params: Params = Object.fromEntries(new URL(req.url).searchParams);
  if (req.method === "POST") Object.assign(params, Object.fromEntries(new URLSearchParams(await req.text())));
  const { Action: action = "", Version: _version, ...rest } = params;
  const call: Ec2Call = { action, params: rest, status: 0, accessKeyId: credential[1]! };
  ctx.server.calls.push(call);
  const answer = (status: number, body: string) => { call.status = status; return xmlResponse(status, body); };

  const f = ctx.server.faults;
  if (f.throttle > 0) { f.throttle--; return answer(503, errorXml("RequestLimitExceeded", "Request limit exceeded.")); }
  if (f.fail5xx > 0) { f.fail5xx--; return answer(500, errorXml("InternalError", "An internal error has occurred.")); }
  if (f.empty200) { f.empty200--; return answer(200, successXml(action || "Unknown", {})); }
  const bucket = bucketOf(action);
  if (bucket && !buckets.take(bucket, ctx.server.limits[bucket])) return answer(503, errorXml("RequestLimitExceeded", "Request limit exceeded."));
  try {
    if (!action) throw new Ec2Fault(400, "MissingAction", "The request must contain the parameter Action");
    if (!params.Version) throw new Ec2Fault(400, "MissingParameter", "The request must contain the parameter Version");
    const handler = ACTIONS[action];
    if (!handler) throw new Ec2Fault(400, "InvalidAction", `The action ${action} is not valid for this web service.`);
    return answer(200, successXml(action, await handler(ctx, rest, call.accessKeyId)));
  } catch (e) {
    if (e instanceof Ec2Fault) return answer(e.status, errorXml(e.code, e.message));
    return answer(500, errorXml("InternalError", e instanceof Error ? e.message : String(e)));
  }
}

function xmlResponse(status: number, body: string): Response {
  return new Response(body, { status, headers: { "content-type": "text/xml;charset=UTF-8" } });
}

/** The seed file of the command line: { instances: [...], volumes: [...], addresses: [...] }. */
export interface Ec2Seed {
  instances?: Ec2Instance[];
  volumes?: { id: string; zone: string; sizeMiB: number; tags?: Record<string, string> }[];
  addresses?: { allocationId: string; publicIp: string; tags?: Record<string, string> }[];
  faults?: Partial<Ec2Faults>;
  limits?: Partial<Ec2Limits>;
  staleTagsMs?: number;
}

/** Adds everything in a seed to a running server. */
export function seedEc2(server: Ec2Server, seed: Ec2Seed): void {
  for (const i of seed.instances ?? []) server.addInstance(i);
  for (const v of seed.volumes ?? []) server.addVolume(v);
  for (const a of seed.addresses ?? []) server.addAddress(a);
  Object.assign(server.faults, seed.faults ?? {});
  Object.assign(server.limits, seed.limits ?? {});
  if (seed.staleTagsMs !== undefined) server.staleTagsMs = seed.staleTagsMs;
}

if (import.meta.main) {
  serveFromCli("ec2", {
    port: { type: "string", default: "0" }, "data-dir": { type: "string" }, "by-id-dir": { type: "string" }, state: { type: "string" },
  }, async (v) => {
    if (!v["data-dir"] || !v["by-id-dir"]) throw new Error("--data-dir and --by-id-dir are required");
    const server = await startEc2({ port: Number(v.port), dataDir: v["data-dir"], byIdDir: v["by-id-dir"] });
    if (v.state) seedEc2(server, JSON.parse(readFileSync(v.state, "utf8")) as Ec2Seed);
    return server;
  });
}
