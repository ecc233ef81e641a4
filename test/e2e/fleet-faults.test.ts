// Fleet rollouts under faults, with four compiled agents (each its own IMDS identity) sharing one EC2
// stand-in and one git server; rollout waves [1, 100%], bake 2s, poll 1s. The app appends its commit
// to a log when it starts, so each test can say which commits each node ever ran. End states, not
// timings: (a) the canary SIGKILLed while it deploys holds the rollout until it is back and done;
// (c) EC2 throttling all along: the rollout still completes, in turn; (d) a new pin halfway: the new
// commit starts from its own canary, nothing is marked failed; (b) the canary terminated while it
// deploys drops out of the count and the rest complete without it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { EC2_LIMITS } from "../servers/ec2-limits.ts";
import { startImds } from "../servers/imds.ts";
import { envOf, NO_KEYS, placeNodes, statusOf, type FleetNode } from "./fleet-node.ts";
import { rankOrder } from "../../agent/fleet/rank.ts";
import { AGENT, BUN, makeKit, stopApps, until, type Kit } from "./kit.ts";

const IDS = ["i-0fa17000000000a1", "i-0fa17000000000b2", "i-0fa17000000000c3", "i-0fa17000000000d4"];
const TAGS = { Role: "web", Environment: "staging" };
const ROLLOUT = "rollout: { waves: [1, 100%], bake: 2s }\n";
const RAN = join(tmpdir(), `fleet-faults-ran-${process.pid}.log`);
// With a file `slow` in its release the app waits 1 s before it listens: a deploy long enough to be caught.
const APP = `
const fs = require("node:fs");
fs.appendFileSync(${JSON.stringify(RAN)}, (process.env.AGENT_COMMIT ?? "?") + " " + process.cwd() + "\\n");
setTimeout(() => Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.PORT ?? 0), fetch(req) {
  if (new URL(req.url).pathname === "/up") return fs.existsSync("sick") ? new Response("sick", { status: 503 }) : new Response("ok");
  return new Response("release " + (process.env.AGENT_COMMIT ?? "?"));
}}), fs.existsSync("slow") ? 1000 : 0);
`;
// health deadline 2s: no longer than the bake
const ROLE = `
processes:
  web:
    run: ${BUN} app.ts
    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 2s }
    stop: { timeout: 3s }
`;

type Node = FleetNode;
let k: Kit, ec2: Ec2Server;
const nodes: Node[] = [];

const start = (n: Node) => { n.daemon = Bun.spawn([AGENT, "run"], { env: envOf(n), stdout: "ignore", stderr: "ignore" }); };
const tagsOf = (n: Node) => ec2.instances.get(n.id)!.tags;
const live = () => nodes.filter((n) => (ec2.instances.get(n.id)!.state ?? "running") === "running");
const on = (n: Node, c: string) => tagsOf(n)["agent:commit"] === c && tagsOf(n)["agent:state"] === "converged";
const moving = (n: Node, c: string) => tagsOf(n)["agent:commit"] === c || (tagsOf(n)["agent:state"] === "deploying" && statusOf(n)?.desired?.commit === c);
const files = (version: string, over: Record<string, string> = {}) => ({ VERSION: `${version}\n`, "app.ts": APP, "roles/web.yaml": ROLE, ...over });
/** The nodes whose app ever started on `commit` (a log line names the release dir, under the node's state dir). */
const ranOn = (commit: string) => {
  const lines = existsSync(RAN) ? readFileSync(RAN, "utf8").split("\n") : [];
  return nodes.filter((n) => lines.some((l) => l.startsWith(commit + " ") && l.includes(n.state + "/"))).map((n) => n.id).sort();
};

/** Poll every 25 ms until `done`, running `each` (which records what it sees) first. */
async function watch(what: string, done: () => boolean, ms: number, each: () => void = () => {}): Promise<void> {
  await until(what, () => { each(); return done() || null; }, ms, 25);
}

/**
 * Watches a rollout of `c` over the live nodes until all are on it: the first node seen moving must
 * be `canary`, and no other moves before the canary converged. Returns what it saw.
 */
async function rollout(c: string, canary: string, ms: number, each: () => void = () => {}): Promise<{ outOfTurn: string[] }> {
  const outOfTurn = new Set<string>();
  const where = () => live().map((n) => `${n.id}: ${tagsOf(n)["agent:commit"]?.slice(0, 7)} ${tagsOf(n)["agent:state"]} ${JSON.stringify(statusOf(n)?.rollout ?? null)}`).join("; ");
  await watch(`every live node on ${c.slice(0, 7)}`, () => live().every((n) => on(n, c)), ms, () => {
    each();
    // the others first, the canary after: a canary not converged now was not when they moved
    const movers = live().filter((n) => n.id !== canary && moving(n, c)).map((n) => n.id);
    const canaryNode = nodes.find((n) => n.id === canary)!;
    if (!on(canaryNode, c)) for (const id of movers) outOfTurn.add(id);
  }).catch((e) => { throw new Error(`${(e as Error).message}; ${where()}`); });
  return { outOfTurn: [...outOfTurn] };
}

beforeAll(async () => {
  ec2 = await startEc2({ dataDir: join(tmpdir(), `fleet-faults-ebs-${process.pid}`), byIdDir: join(tmpdir(), `fleet-faults-by-id-${process.pid}`), loopDevices: false });
  for (const [i, id] of IDS.entries()) {
    const zone = `us-east-1${"abcd"[i]}`;
    ec2.addInstance({ id, zone, tags: { ...TAGS } });
    nodes.push({ id, imds: await startImds({ instanceId: id, region: "us-east-1", zone, tags: TAGS }), state: "", config: "", daemon: null });
  }
  writeFileSync(RAN, "");
  chmodSync(RAN, 0o666);
  k = await makeKit("fleet-faults", ROLE, {
    env: NO_KEYS, config: ["identity: imds", `imds: { endpoint: "${nodes[0]!.imds.url}", timeout: 500ms }`, `aws: { endpoint: "${ec2.url}" }`],
  });
  placeNodes(k, nodes);
  const v1 = await k.release(files("v1"), "v1");
  for (const n of nodes) start(n);
  await watch("all four on v1", () => nodes.every((n) => on(n, v1)), 50_000);
}, 90_000);

afterAll(async () => {
  for (const n of nodes) n.daemon?.kill("SIGTERM");
  await Promise.all(nodes.map((n) => n.daemon?.exited));
  for (const n of nodes) { await stopApps(n.state); await n.imds.stop(); }
  await ec2?.stop();
  await k?.stop();
  for (const d of ["fleet-faults-ebs", "fleet-faults-by-id"]) rmSync(join(tmpdir(), `${d}-${process.pid}`), { recursive: true, force: true });
  rmSync(RAN, { force: true });
});

describe("fleet rollouts under faults: four nodes, waves [1, 100%], bake 2s, poll 1s", () => {
  test("(a) the canary SIGKILLed while it deploys: nobody moves past it; restarted, it finishes and the rest follow", async () => {
    const c = await k.release(files("va", { slow: "1\n" }), "va deploys slowly", ROLLOUT);
    const canary = nodes.find((n) => n.id === rankOrder(c, IDS)[0])!;
    const others = nodes.filter((n) => n !== canary);
    await watch("the canary deploying", () => tagsOf(canary)["agent:state"] === "deploying" && statusOf(canary)?.desired?.commit === c, 20_000);
    canary.daemon!.kill("SIGKILL");
    await canary.daemon!.exited;
    // a few of the others' polls with the canary's agent gone (its tag still says deploying)
    await Bun.sleep(3_000);
    expect(others.filter((n) => moving(n, c)).map((n) => n.id)).toEqual([]);
    start(canary);
    const seen = await rollout(c, canary.id, 40_000);
    expect(seen.outOfTurn).toEqual([]);
    for (const n of nodes) expect(statusOf(n).current.commit).toBe(c);
    expect(ranOn(c)).toEqual([...IDS].sort());
    expect(nodes.filter((n) => tagsOf(n)["agent:failed"]).map((n) => n.id)).toEqual([]);
  }, 60_000);

  test("(c) EC2 throttling throughout (tiny token buckets): the rollout completes, nobody out of turn", async () => {
    const before = ec2.calls.length;
    ec2.limits.describe = { burst: 3, perSecond: 3 };   // four nodes read about once a second each (and retry): many are refused
    ec2.limits.createTags = { burst: 1, perSecond: 1 };
    try {
      const c = await k.release(files("vc"), "vc under throttling", ROLLOUT);
      const canary = rankOrder(c, IDS)[0]!;
      const seen = await rollout(c, canary, 55_000);
      expect(seen.outOfTurn).toEqual([]);
      const calls = ec2.calls.slice(before);
      const refused = calls.filter((x) => x.status === 503);
      expect(refused.length).toBeGreaterThan(0);   // RequestLimitExceeded did happen (about a third of the calls in one run)
      for (const n of nodes) expect(statusOf(n).current.commit).toBe(c);
      expect(nodes.filter((n) => tagsOf(n)["agent:failed"]).map((n) => n.id)).toEqual([]);
    } finally {
      ec2.limits.describe = { ...EC2_LIMITS.describe! };
      ec2.limits.createTags = { ...EC2_LIMITS.createTags! };
    }
  }, 60_000);

  test("(d) a new pin while a rollout is halfway: the new commit starts from its own canary; the old rollout ends; nothing failed", async () => {
    const old = await k.release(files("vd1"), "vd1", ROLLOUT);
    const oldCanary = nodes.find((n) => n.id === rankOrder(old, IDS)[0])!;
    await watch("the first rollout's canary converged", () => on(oldCanary, old), 30_000);
    const c = await k.release(files("vd2", { slow: "1\n" }), "vd2 pinned halfway", ROLLOUT);
    const canary = rankOrder(c, IDS)[0]!;
    const seen = await rollout(c, canary, 50_000);
    expect(seen.outOfTurn).toEqual([]);
    for (const n of nodes) {
      expect(statusOf(n).current.commit).toBe(c);
      expect(tagsOf(n)["agent:failed"]).toBeUndefined();
      expect(statusOf(n).rollout?.decision ?? null).not.toBe("halted");
    }
    // the old commit reached its canary at least; whoever else ran it started before the new pin
    expect(ranOn(old)).toContain(oldCanary.id);
  }, 60_000);

  test("(b) the canary terminated while it deploys: it drops out of the count and the other three complete", async () => {
    const c = await k.release(files("vb", { slow: "1\n" }), "vb", ROLLOUT);
    const gone = nodes.find((n) => n.id === rankOrder(c, IDS)[0])!;
    await watch("the canary deploying", () => tagsOf(gone)["agent:state"] === "deploying" && statusOf(gone)?.desired?.commit === c, 20_000);
    gone.daemon!.kill("SIGKILL");
    await gone.daemon!.exited;
    gone.daemon = null;
    await stopApps(gone.state);
    ec2.instances.get(gone.id)!.state = "terminated";
    // among the three left, the first in the commit's order is the canary now
    const rest = IDS.filter((id) => id !== gone.id);
    const seen = await rollout(c, rankOrder(c, rest)[0]!, 45_000);
    expect(seen.outOfTurn).toEqual([]);
    for (const n of live()) expect(statusOf(n).current.commit).toBe(c);
    expect(live().map((n) => n.id).sort()).toEqual([...rest].sort());
    expect(nodes.filter((n) => tagsOf(n)["agent:failed"]).map((n) => n.id)).toEqual([]);
  }, 60_000);
});
