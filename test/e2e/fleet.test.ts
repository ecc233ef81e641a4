// Fleet rollouts with no central deployer: three compiled agents, each with its own IMDS identity,
// share one EC2 stand-in (their agent:* tags are the only thing they share) and one git server.
// With `rollout: { waves: [1, 100%] }` a new commit goes to one canary first; the others cut over
// only after it converged and baked. A canary that fails its health check halts the rollout: the
// others never run the bad commit, and their status names the canary.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { startImds } from "../servers/imds.ts";
import { envOf, NO_KEYS, placeNodes, statusOf, type FleetNode } from "./fleet-node.ts";
import { rankOrder } from "../../agent/fleet/rank.ts";
import { AGENT, APP, makeKit, role, stopApps, until, type Kit } from "./kit.ts";

const IDS = ["i-0f1ee7000000000a1", "i-0f1ee7000000000b2", "i-0f1ee7000000000c3"];
const TAGS = { Role: "web", Environment: "staging" };
const ROLLOUT = "rollout: { waves: [1, 100%], bake: 2s }\n";

type Node = FleetNode;
let k: Kit, ec2: Ec2Server;
const nodes: Node[] = [];

const tagsOf = (n: Node) => ec2.instances.get(n.id)!.tags;
// health deadline 2s: no longer than the bake (agent validate refuses a bake shorter than a health deadline)
const ROLE = role().replace("deadline: 4s", "deadline: 2s");
const files = (version: string, over: Record<string, string> = {}) => ({ VERSION: `${version}\n`, "app.ts": APP, "roles/web.yaml": ROLE, ...over });
const describes = () => ec2.calls.filter((c) => c.action === "DescribeInstances").length;

beforeAll(async () => {
  ec2 = await startEc2({ dataDir: join(tmpdir(), `fleet-ebs-${process.pid}`), byIdDir: join(tmpdir(), `fleet-by-id-${process.pid}`), loopDevices: false });
  for (const [i, id] of IDS.entries()) {
    const zone = `us-east-1${"abc"[i]}`;
    ec2.addInstance({ id, zone, tags: { ...TAGS } });
    const imds = await startImds({ instanceId: id, region: "us-east-1", zone, tags: TAGS });
    nodes.push({ id, imds, state: "", config: "", daemon: null });
  }
  k = await makeKit("fleet", ROLE, {
    env: NO_KEYS, config: ["identity: imds", `imds: { endpoint: "${nodes[0]!.imds.url}", timeout: 500ms }`, `aws: { endpoint: "${ec2.url}" }`],
  });
  placeNodes(k, nodes);
}, 60_000);

afterAll(async () => {
  for (const n of nodes) {
    n.daemon?.kill("SIGTERM");
    await n.daemon?.exited;
    await stopApps(n.state);
    await n.imds.stop();
  }
  await ec2?.stop();
  await k?.stop();
  for (const d of ["fleet-ebs", "fleet-by-id"]) rmSync(join(tmpdir(), `${d}-${process.pid}`), { recursive: true, force: true });
});

/** Poll every 25 ms until `done`, running `each` (which records what it sees) at every poll. */
async function watch(done: () => boolean, ms: number, each: () => void = () => {}): Promise<void> {
  await until("the rollout", () => { each(); return done() || null; }, ms, 25);
}

describe("a rollout in waves [1, 100%], bake 2s, poll 1s, three nodes", () => {
  let v1: string, v2: string;

  test("start: all three converge on v1 (no rollout yet) and tag agent:version and agent:since", async () => {
    v1 = await k.release(files("v1"), "v1");
    for (const n of nodes) n.daemon = Bun.spawn([AGENT, "run"], { env: envOf(n), stdout: "ignore", stderr: "ignore" });
    await watch(() => nodes.every((n) => tagsOf(n)["agent:commit"] === v1 && tagsOf(n)["agent:state"] === "converged"), 40_000);
    for (const n of nodes) {
      expect(tagsOf(n)["agent:version"]).toBeTruthy();
      expect(tagsOf(n)["agent:since"]).toBe(statusOf(n).current.since);
    }
  }, 45_000);

  test("a new commit goes to exactly one canary; the others move only after it converged and baked", async () => {
    v2 = await k.release(files("v2"), "v2", ROLLOUT);
    const canary = rankOrder(v2, IDS)[0]!;
    const others = nodes.filter((n) => n.id !== canary);
    const seenReasons = new Set<string>();
    let canaryConvergedFirst = true;
    const waitedFor: string[] = [], waitedBefore: string[] = [];
    const canaryNode = nodes.find((n) => n.id === canary)!;
    await watch(() => nodes.every((n) => tagsOf(n)["agent:commit"] === v2 && tagsOf(n)["agent:state"] === "converged"), 40_000, () => {
      // Read the others' tags and status.json first, the canary's tags after: a canary not converged
      // now was not converged when those were written (its convergence is for good in this test).
      // Read the other way round, a node's "Baking" written just after the canary converged would
      // count as a wait before it.
      const seen = others.map((n) => ({ tags: { ...tagsOf(n) }, r: statusOf(n)?.rollout }));
      const canaryDone = tagsOf(canaryNode)["agent:commit"] === v2 && tagsOf(canaryNode)["agent:state"] === "converged";
      for (const { tags, r } of seen) {
        const moving = tags["agent:state"] === "deploying" || tags["agent:commit"] === v2;
        if (moving && !canaryDone) canaryConvergedFirst = false;
        if (!r || r.decision !== "wait") continue;
        seenReasons.add(r.reason);
        waitedFor.push(JSON.stringify(r.waitingFor));
        if (!canaryDone) { waitedBefore.push(r.reason); expect(r).toMatchObject({ wave: 2, of: 2 }); }
      }
    });
    expect(canaryConvergedFirst).toBe(true);
    // Every wait names the canary, and only it (EarlierWave while it deployed, Baking after). Whether a
    // node's tick fell inside the canary's deploy is up to the scheduler: a wait seen before the canary
    // converged must be EarlierWave, but one need not be seen.
    expect([...new Set(waitedFor)]).toEqual([JSON.stringify([canary])]);
    expect([...new Set(waitedBefore)].filter((r) => r !== "EarlierWave")).toEqual([]);
    expect(seenReasons.has("Baking")).toBe(true);          // after the canary converged, the others waited out its bake
    for (const n of nodes) expect(statusOf(n).current.commit).toBe(v2);
    // every node runs the pinned commit: idle ticks read no peers
    const before = describes();
    await Bun.sleep(2_500);
    expect(describes()).toBe(before);
  }, 45_000);

  test("a canary that fails its health check halts the rollout: the others never run the bad commit", async () => {
    const bad = await k.release(files("v3", { sick: "yes\n" }), "v3 is never healthy", ROLLOUT);
    const canary = rankOrder(bad, IDS)[0]!;
    const others = nodes.filter((n) => n.id !== canary);
    let ranBad = false;
    const halted = (n: Node) => statusOf(n)?.rollout?.decision === "halted";
    await watch(() => tagsOf(nodes.find((n) => n.id === canary)!)["agent:failed"] === bad && others.every(halted), 40_000, () => {
      for (const n of others) if (tagsOf(n)["agent:commit"] === bad || statusOf(n)?.current.commit === bad || tagsOf(n)["agent:state"] === "deploying") ranBad = true;
    });
    const before = describes();
    await Bun.sleep(2_500);      // a few more polls: still nobody moves, and a halted rollout is read no more
    for (const n of others) {
      if (tagsOf(n)["agent:commit"] === bad || statusOf(n).current.commit === bad) ranBad = true;
      expect(statusOf(n).rollout).toMatchObject({ decision: "halted", haltedBy: [canary], reason: "PeerFailed" });
      expect(statusOf(n).current.commit).toBe(v2);
      expect(statusOf(n).phase).toBe("waiting");
    }
    expect(ranBad).toBe(false);
    expect(describes()).toBe(before);
    const text = await Bun.spawn([AGENT, "status"], { env: envOf(others[0]!), stdout: "pipe", stderr: "pipe" }).stdout;
    expect(await new Response(text).text()).toContain(`halted by ${canary}`);
  }, 50_000);

  test("agent status --fleet: one DescribeInstances, per role halted by the canary, per node wave, commit, state, since, failed", async () => {
    const bad: string = statusOf(nodes[0]!).desired.commit;
    const canary = rankOrder(bad, IDS)[0]!;
    const before = describes();
    const p = Bun.spawn([AGENT, "status", "--fleet", "--json"], { env: envOf(nodes[1]!), stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(err).toBe("");
    expect(code).toBe(1);                  // not done
    expect(describes()).toBe(before + 1);
    const v = JSON.parse(out);
    expect(v.environment).toBe("staging");
    expect(v.roles).toHaveLength(1);
    expect(v.roles[0]).toMatchObject({ role: "web", commit: bad, state: "halted", haltedBy: [canary], wave: 1, of: 2, onCommit: 0 });
    expect(v.roles[0].nodes.map((n: any) => n.instance)).toEqual(rankOrder(bad, IDS));
    expect(v.roles[0].nodes[0]).toMatchObject({ instance: canary, wave: 1, state: "failed", failed: bad });
    for (const n of v.roles[0].nodes.slice(1)) expect(n).toMatchObject({ wave: 2, state: "converged", failed: null, zone: expect.stringMatching(/^us-east-1[abc]$/) });
    const text = Bun.spawn([AGENT, "status", "--fleet"], { env: envOf(nodes[1]!), stdout: "pipe" });
    expect(await new Response(text.stdout).text()).toContain(`web  halted by ${canary}`);
  }, 20_000);
  test("a node launched while the rollout is halted starts on the commit its converged peers run, never the bad one", async () => {
    const bad: string = statusOf(nodes[0]!).desired.commit;
    const good = v2;
    const id = "i-0f1ee7000000000d4";
    ec2.addInstance({ id, zone: "us-east-1a", tags: { ...TAGS } });
    const imds = await startImds({ instanceId: id, region: "us-east-1", zone: "us-east-1a", tags: TAGS });
    const n: Node = { id, imds, state: join(k.dir, "state-3"), config: join(k.dir, "agent-3.yaml"), daemon: null };
    writeFileSync(n.config, readFileSync(nodes[1]!.config, "utf8").replace(`stateDir: ${nodes[1]!.state}`, `stateDir: ${n.state}`).replace(nodes[1]!.imds.url, imds.url));
    nodes.push(n);
    let ranBad = false;
    n.daemon = Bun.spawn([AGENT, "run"], { env: envOf(n), stdout: "ignore", stderr: "ignore" });
    // it starts on v2, then reads again and, like its peers, stays there: the rollout of the bad commit is halted
    await watch(() => tagsOf(n)["agent:commit"] === good && tagsOf(n)["agent:state"] === "converged" && statusOf(n)?.rollout?.decision === "halted", 30_000, () => {
      if (tagsOf(n)["agent:commit"] === bad || statusOf(n)?.current.commit === bad || tagsOf(n)["agent:state"] === "deploying") ranBad = true;
    });
    expect(ranBad).toBe(false);
    expect(statusOf(n).current.commit).toBe(good);
    expect(statusOf(n).desired.commit).toBe(bad);
    expect(statusOf(n).rollout).toMatchObject({ decision: "halted", haltedBy: [rankOrder(bad, IDS)[0]], reason: "PeerFailed" });
  }, 40_000);
});
