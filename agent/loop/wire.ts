// The one place that builds the real adapters from the node's config: IMDS or a static identity,
// the git source, the release directories, the supervisor and the AWS steps.
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { systemClock, type Clock } from "../core/clock.ts";
import { AgentError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { offerRuntime } from "../host/runtime.ts";
import type { Config, Role } from "../manifest/schema.ts";
import { RemoteSource } from "../source/remote.ts";
import { layout, type Layout } from "../state/layout.ts";
import { currentCommit, listReleases, logToRelease, markRelease, pruneReleases, readRelease, switchCurrent } from "../state/releases.ts";
import { StateStore } from "../state/store.ts";
import { Supervisor, type SupervisorEvent } from "../supervisor/index.ts";
import { prepareRelease, runAs, runInRelease } from "../source/prepare.ts";
import { AptPackages } from "../host/packages.ts";
import { SystemUsers } from "../host/users.ts";
import { createChildImds } from "../cloud/imds-child.ts";
import { createChildEc2 } from "../cloud/ec2-child.ts";
import { refreshedIdentity, resolveIdentity } from "../cloud/identity.ts";
import { createCloudMemory, type CloudContext } from "../cloud/context.ts";
import { onSdkLoad } from "../cloud/sdk.ts";
import type { Ec2 } from "../cloud/ec2.ts";
import { addressResource, volumeResources } from "./node-resources.ts";
import { convergeTargets, drainTargets, type TargetsContext } from "../converge/targets.ts";
import { createElbv2, type Elbv2 } from "../cloud/elbv2.ts";
import { peerTips, syncTags } from "../converge/tags.ts";
import type { Trust } from "../trust/trust.ts";
import { ProcessesAdapter } from "./processes.ts";
import { FrontKeeper } from "./front.ts";
import { endpointFor } from "../cloud/endpoints.ts";
import { createRolloutTable } from "../cloud/dynamodb.ts";
import { rolloutTablePort } from "./rollout-table.ts";
import { tagsStore } from "./rollout-tags.ts";
import { createSecretsClient, type SecretsClient } from "../cloud/secrets.ts";
import { Secrets } from "../secrets/keeper.ts";
import type { CloudPort, Identity, IdentityPort, Ports, ReleasesPort, TargetsPort } from "./ports.ts";

export interface Wired {
  ports: Ports;
  supervisor: Supervisor;
  front: FrontKeeper;
  goodReleases(): string[];
}

export function wire(config: Config, log: Logger, opts: { clock?: Clock; onProcessEvent?: (e: SupervisorEvent) => void; trust?: Trust | null } = {}): Wired {
  const clock = opts.clock ?? systemClock;
  const L = layout(config.stateDir);
  for (const d of [L.root, L.releases, L.shared, L.logs]) mkdirSync(d, { recursive: true, mode: 0o755 });
  const store = new StateStore(L.stateFile);
  // Setup steps, hooks and processes inherit PATH: `bun` resolves even on a node without one.
  process.env.PATH = offerRuntime(L.bin);
  // The SDK's default credential chain reads instance-role keys from IMDS: the same one we use.
  if (config.imds.endpoint) process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = config.imds.endpoint;
  // EC2 calls run in `agent _ec2`, a child started for a converge's calls: the SDK client never stays in the daemon.
  const ec2For = (region: string) => createChildEc2({ region, endpoint: endpointFor(config.aws, "ec2", process.env) }, log.child("cloud"));
  // The SDK clients load at their first call: say when, and what that cost in memory.
  onSdkLoad((name, rssAddedMB) => log.child("cloud").info("loaded an AWS SDK client", { package: name, rssAddedMB }));

  const identity: IdentityPort = typeof config.identity === "object"
    ? { resolve: async () => ({ identity: { ...(config.identity as Exclude<Config["identity"], "imds">) } }) }
    : (() => {
      // IMDS reads run in `agent _imds` (one child a tick): the SDK's MetadataService never stays in the daemon.
      // Its reads come at a tick's start, so the child goes 1 s after them; and IMDS is asked at most
      // every 30 s (refreshedIdentity), so a short poll does not start a child every tick.
      const imds = createChildImds({ endpoint: config.imds.endpoint, timeoutMs: config.imds.timeout, idleMs: 1000 }, log.child("cloud"));
      const read = refreshedIdentity((cached) => resolveIdentity({ imds, ec2Factory: ec2For, tagNames: config.tags, cached, now: () => clock.now() }), () => clock.now());
      return { resolve: async (cached: Parameters<IdentityPort["resolve"]>[0]) => {
        const r = await read(cached);
        return { identity: r.identity, warning: r.warning };
      } };
    })();

  // The token file is read for every request, not here: a rotated or late token needs no restart.
  const source = new RemoteSource({
    gitdir: L.repo, url: config.repo, branch: config.branch, timeoutMs: 30_000, log: log.child("source"),
    auth: config.auth?.tokenFile ? { username: config.auth.username ?? "x-access-token", tokenFile: config.auth.tokenFile } : null,
    allowForcePush: config.allowForcePush, requireDescent: !!config.trust,
  });

  const supervisor = new Supervisor({ clock, log: log.child("supervisor"), store, logs: { maxBytes: 50 * 1024 * 1024, keep: 5 }, onEvent: opts.onProcessEvent,
    stateDir: resolve(L.root) });
  // Secrets: the SDK clients are loaded (dynamic import) only when a role has references.
  const secretClients = new Map<string, Promise<SecretsClient>>();
  const secrets = new Secrets({
    store, clock, log: log.child("secrets"),
    client: (region) => secretClients.get(region) ?? secretClients.set(region, createSecretsClient({
      region, endpoints: { ssm: endpointFor(config.aws, "ssm", process.env), secretsmanager: endpointFor(config.aws, "secretsmanager", process.env) },
    })).get(region)!,
  });
  const front = new FrontKeeper(resolve(L.root), store, log.child("front"), L.processLog("front"));
  const processes = new ProcessesAdapter(supervisor, L, store, log.child("processes"), secrets, front);

  const packages = new AptPackages(), users = new SystemUsers();
  const releases: ReleasesPort = {
    info(commit) {
      const r = readRelease(L, commit);
      // A preparation cancelled by a newer commit is not a verdict on this commit: prepare it anew.
      if (!r || (r.state === "failed" && r.reason === "PreparationCancelled")) return { state: "missing" };
      return { state: r.state, failedAt: r.state === "failed" ? r.endedAt ?? r.updatedAt : null, reason: r.reason ?? null, message: r.message ?? null,
        since: r.activatedAt ? new Date(r.activatedAt).toISOString() : null };
    },
    current: () => currentCommit(L),
    async prepare(commit, role, _env, signal) {
      const subject = (await source.ensureCommit(commit, signal)).subject;
      await source.checkout(commit, L, { subject, now: clock.now() }, signal);
      await prepareRelease({ layout: L, commit, role, previous: store.get().lastGoodCommit, packages, users, log: log.child("prepare"), signal, now: () => clock.now(),
        stepEnv: (step, i) => secrets.forCommand(commit, role, step.secrets, `setup step ${i + 1} "${step.run}"`) });
    },
    switchCurrent: (c) => switchCurrent(L, c),
    mark: (c, state, reason, message) => { markRelease(L, c, state, clock.now(), reason ? { reason, message } : {}); },
    runHook: (c, role, command, phase, signal) => runHook(L, c, role, command, phase, signal, secrets.forCommand(c, role, role.hooks.secrets, `${phase} hook \`${command}\``)),
    prune: (inUse) => { pruneReleases(L, inUse); },
  };

  // AWS: clients made on first use, so a static identity without volumes or addresses makes no call.
  const clients = new Map<string, Ec2>();
  const ec2Of = (region: string) => clients.get(region) ?? clients.set(region, ec2For(region)).get(region)!;
  const memory = createCloudMemory();
  const ctxFor = (id: Identity): CloudContext => ({
    ec2: ec2Of(id.region), instanceId: id.instanceId, zone: id.zone, byIdDir: config.devices.byIdDir,
    log: log.child("cloud"), clock, memory,
  });
  // Rollout stores: the peers' agent:* tags need the instance's own EC2 identity; the DynamoDB table
  // (its SDK loaded at the first call) does not, but asks EC2 about silent records only with it.
  const onEc2 = typeof config.identity !== "object";
  const tags = onEc2 ? tagsStore((id) => ec2Of(id.region).describePeers({ key: config.tags.environment, value: id.environment ?? "" }, config.tags.role)) : null;
  const rolloutTable = rolloutTablePort(config.rollout?.table ? (region) => createRolloutTable({ region, table: config.rollout!.table!, endpoint: endpointFor(config.aws, "dynamodb", process.env) }) : null,
    clock, log.child("rollout"), onEc2 ? (id, ids, retryAfterMs) => ec2Of(id.region).instanceStates(ids, retryAfterMs) : null);
  const cloud: CloudPort = {
    // converge/volume.ts and converge/address.ts load at a resource's first plan (loop/node-resources.ts).
    volumes: (role, manifest, id) => volumeResources(role, manifest, id, () => ctxFor(id)),
    address: (role, manifest, id) => addressResource(role, manifest, id, () => ctxFor(id)),
    // Tags need the instance's own EC2 identity: with a static identity (off EC2) there is none.
    syncTags: (id, want, last) => typeof config.identity === "object" ? Promise.resolve(last) : syncTags(ec2Of(id.region), id.instanceId, want, last),
    // Off EC2 (a static identity) a node has no peers to ask.
    peerTips: (id) => typeof config.identity === "object" || !id.environment ? Promise.resolve([])
      : peerTips(ec2Of(id.region), { key: config.tags.environment, value: id.environment }, config.tags.role, id.instanceId),
    rolloutStore: (name) => name === "dynamodb" ? rolloutTable : tags,
    rolloutTable,
  };

  // Target groups: the ELBv2 client (and its SDK) is made at the first call, so a role bound to none never loads it.
  const elbClients = new Map<string, Elbv2>();
  const elbOf = (region: string) => elbClients.get(region) ?? elbClients.set(region, createElbv2({ region, endpoint: endpointFor(config.aws, "elbv2", process.env) })).get(region)!;
  const delays = new Map<string, number>();
  const targetsCtx = (region: string): TargetsContext => ({ elbv2: elbOf(region), store, clock, log: log.child("cloud"), delays });
  const targets: TargetsPort = {
    converge: (id, d, signal) => convergeTargets(targetsCtx(id.region), { ...d, instanceId: id.instanceId }, false, signal),
    drain: async (signal) => {
      const id = store.get().identity;
      if (!id || !Object.keys(store.get().targets ?? {}).length) return { planned: [], conditions: [], notices: [] };
      return drainTargets(targetsCtx(id.region), id.instanceId, signal);
    },
  };

  const ports: Ports = { config, layout: L, store, clock, log, identity, source, releases, processes, cloud, trust: opts.trust ?? null, secrets, targets };
  return {
    ports, supervisor, front,
    goodReleases: () => listReleases(L).filter((r) => r.state === "good" || r.state === "active").map((r) => r.commit),
  };
}

/** A hook runs like a setup step (runInRelease), as the role's user; a failure says where its output is. */
async function runHook(L: Layout, commit: string, role: Role, command: string, phase: string, signal: AbortSignal, env: Record<string, string>): Promise<void> {
  logToRelease(L, commit, `--- ${phase}: ${command}`);
  const user = await runAs(role.user);   // fails closed: never root in place of an unknown user
  const r = await runInRelease(L, commit, user, command, { timeoutMs: 10 * 60_000, signal, env });
  if (r.code !== 0) {
    throw new AgentError("HookFailed", `${phase} hook \`${command}\` ${r.timedOut ? "timed out" : `exited ${r.code ?? r.signal}`}; see ${L.releaseLog(commit)}`);
  }
}
