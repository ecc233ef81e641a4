// A freshly launched node with trust: takes its replay floor from its peers (agent:tip, read with
// one filtered DescribeInstances from the EC2 stand-in): a replayed old branch cannot lure it onto
// an old signed commit. On converging it writes its own agent:tip. Compiled binary, real SDK.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { startImds, type ImdsServer } from "../servers/imds.ts";
import { HAVE_GPG, HAVE_SSH_KEYGEN, signWith, signerLine, sshKey } from "../fixtures/signing.ts";
import { makeKit, stopApps, type Kit } from "./kit.ts";

const t = HAVE_SSH_KEYGEN && HAVE_GPG ? test : test.skip;
const NEW = "i-0e2e00000000000a1", PEER = "i-0e2e00000000000b2", OTHER = "i-0e2e00000000000c3", OTHER_ENV = "i-0e2e00000000000d4";
let k: Kit, ec2: Ec2Server, imds: ImdsServer;
const fresh = async () => { await stopApps(k.state); rmSync(k.state, { recursive: true, force: true }); };

beforeAll(async () => {
  if (!HAVE_SSH_KEYGEN || !HAVE_GPG) return;
  ec2 = await startEc2({ dataDir: join(tmpdir(), `ebs-${process.pid}`), byIdDir: join(tmpdir(), `by-id-${process.pid}`) });
  const tags = { Role: "web", Environment: "staging" };
  ec2.addInstance({ id: NEW, zone: "us-east-1a", tags: { ...tags } });
  imds = await startImds({ instanceId: NEW, region: "us-east-1", zone: "us-east-1a", tags });
  k = await makeKit("trust-peers", undefined, {
    env: { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined },
    config: ["identity: imds", `imds: { endpoint: "${imds.url}", timeout: 500ms }`, `aws: { endpoint: "${ec2.url}" }`],
  });
  const ops = await sshKey(k.dir, "ops");
  writeFileSync(join(k.dir, "allowed_signers"), signerLine(ops, "ops@example.com") + "\n");
  appendFileSync(k.config, `trust: { allowedSigners: ${join(k.dir, "allowed_signers")} }\n`);
  await signWith(k.repo, ops);
}, 60_000);
afterAll(async () => {
  if (k) await stopApps(k.state);
  await ec2?.stop();
  await imds?.stop();
  await k?.stop();
});

describe("a new node's replay floor", () => {
  let v1tip: string, v2tip: string;

  t("refuses a replayed old branch: the tip must descend from the agent:tip its peers converged on", async () => {
    await k.release({ VERSION: "v1\n" }, "v1");
    v1tip = k.repo.head;
    await k.release({ VERSION: "v2\n" }, "v2 (fixes a hole in v1)");
    v2tip = k.repo.head;
    ec2.addInstance({ id: PEER, zone: "us-east-1b", tags: { Role: "web", Environment: "staging", "agent:tip": v2tip } });
    ec2.addInstance({ id: OTHER_ENV, zone: "us-east-1b", tags: { Role: "web", Environment: "production", "agent:tip": "f".repeat(40) } });
    await k.repo.forcePush(v1tip);          // someone pushes the old branch back
    const r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    const s = k.status();
    expect(s.lastTick.reason).toBe("BehindPeers");
    expect(s.lastTick.error).toBe(`refusing tip ${v1tip.slice(0, 12)}: it does not descend from ${v2tip.slice(0, 12)}, which peer ${PEER} already accepted (an older branch may have been pushed back); push a new signed commit on top of ${v2tip.slice(0, 12)}`);
    expect(s.current.commit).toBeNull();
    // one filtered DescribeInstances, the peers read the fleet uses: this environment's live instances
    const calls = ec2.calls.filter((c) => c.action === "DescribeInstances");
    expect(calls).toHaveLength(1);
    expect(Object.values(calls[0]!.params)).toEqual(expect.arrayContaining(["tag:Environment", "staging", "instance-state-name", "running"]));
  });

  t("accepts a tip on top of the peers' floor, and then writes its own agent:tip once converged", async () => {
    await k.repo.forcePush(v2tip);
    const v3 = await k.release({ VERSION: "v3\n" }, "v3");
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    expect(k.status().current.commit).toBe(v3);
    const st = JSON.parse(readFileSync(join(k.state, "state.json"), "utf8"));
    expect(st.trusted).toEqual({ tip: k.repo.head, signersFrom: v2tip });
    expect(ec2.instances.get(NEW)!.tags["agent:tip"]).toBe(k.repo.head);
    // converged again with nothing new: no second CreateTags
    const before = ec2.calls.filter((c) => c.action === "CreateTags").length;
    expect((await k.agent(["once"])).code).toBe(0);
    expect(ec2.calls.filter((c) => c.action === "CreateTags").length).toBe(before);
  });

  t("a peer on another line: the new node refuses rather than pick one", async () => {
    await k.repo.git("checkout", "--quiet", "--orphan", "elsewhere");
    await k.repo.git("commit", "--quiet", "-m", "another history");
    const elsewhere = await k.repo.git("rev-parse", "HEAD");
    await k.repo.git("push", "--quiet", "origin", "HEAD:refs/heads/elsewhere");
    await k.repo.git("checkout", "--quiet", "main");
    ec2.addInstance({ id: OTHER, zone: "us-east-1c", tags: { Role: "web", Environment: "staging", "agent:tip": elsewhere } });
    await fresh();
    const r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    expect(k.status().lastTick.reason).toBe("BehindPeers");
    expect(k.status().lastTick.error).toContain(`does not descend from ${elsewhere.slice(0, 12)}, which peer ${OTHER} already accepted`);
  });
});
