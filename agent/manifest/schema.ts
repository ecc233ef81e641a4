// The three file formats of DESIGN.md as one typed schema. Pure: no I/O.
// The schema checks shape and values; rules that span files live in validate.ts.
import { z } from "zod";
import { DURATION_PATTERN, parseDuration } from "../core/duration.ts";
import { splitCommand } from "../core/argv.ts";

export const NAME_PATTERN = "^[a-z][a-z0-9-]{0,62}$";

export const Name = z.string().regex(new RegExp(NAME_PATTERN), {
  message: "must be lowercase letters, digits and '-', starting with a letter, at most 63 characters",
}).meta({ examples: ["web"] });

export const Commit = z.string().regex(/^[0-9a-f]{40}$/, {
  message: "must be a full 40-character hex commit id (git rev-parse HEAD)",
}).meta({ examples: ["9fceb02d0ae598e95dc970b74767f19372d61af8"] });

/** "30s" in the file, milliseconds in the program. */
export const Duration = z
  .string()
  .regex(new RegExp(DURATION_PATTERN), { message: "must be a duration like 500ms, 30s, 2m or 1h" })
  .transform((s) => parseDuration(s)!)
  .meta({ description: "A duration: a whole number and a unit, ms, s, m or h (30s, 2m).", examples: ["30s"] });

/** A relative path that stays inside the release directory. */
export const RelPath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith("/"), { message: "must be relative to the release directory, not absolute" })
  .refine((p) => !p.split("/").includes(".."), { message: "must stay inside the release directory (no '..')" })
  .meta({ description: "A path relative to the release directory; never absolute, never '..'.", examples: ["package.json"] });

const AbsPath = z.string().regex(/^\/[^\0]*$/, { message: "must be an absolute path" }).meta({ examples: ["/data"] });

const Percent = z
  .string()
  .regex(/^[0-9]{1,3}%$/, { message: "must be a percentage like 25% (or a whole number of nodes)", abort: true })
  .refine((s) => Number(s.slice(0, -1)) >= 1 && Number(s.slice(0, -1)) <= 100, {
    message: "must be between 1% and 100%",
  })
  .meta({ examples: ["25%"] });

/** Waves are cumulative: each count, and each percentage, larger than the one of its kind before it; nothing after 100%. */
function increasingWaves(waves: (number | string)[], ctx: z.RefinementCtx): void {
  let count = 0, share = 0;
  waves.forEach((w, i) => {
    const isShare = typeof w === "string";
    const v = isShare ? Number(w.slice(0, -1)) : w;
    if (i > 0 && share >= 100) {
      ctx.addIssue({ code: "custom", path: [i], message: `a wave after 100% never starts (100% is every node): remove ${JSON.stringify(w)} or lower the wave before it` });
    } else if (isShare ? v <= share : v <= count) {
      const before = isShare ? `${share}%` : String(count);
      ctx.addIssue({ code: "custom", path: [i], message: `waves are cumulative and must increase: ${JSON.stringify(w)} is not larger than the ${before} before it` });
    }
    if (isShare) share = Math.max(share, v); else count = Math.max(count, v);
  });
}

/** A command as one string; refused here when the agent could not split it into argv later. */
const Command = z.string().min(1, { abort: true }).superRefine((line, ctx) => {
  const r = splitCommand(line);
  if (!r.ok) ctx.addIssue({ code: "custom", message: r.message });
});

const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "must be an environment variable name" });

/** A value the process's environment may hold: Linux refuses a single string over 128 KB; we stop well before. */
import { MAX_ENV_VALUE } from "./problem.ts";
export { MAX_ENV_VALUE };
const PlainValue = z.union([z.string(), z.number(), z.boolean()]).transform(String)
  .refine((v) => v.length <= MAX_ENV_VALUE, { message: `is over 32 KB: keep large values in a file of the release (or a shared: path) and pass its path` });

// Secret references (agent/secrets/): resolved with the instance role at process start, never
// written anywhere. In a role file, `${environment}` in a name stands for the node's environment.
const SSM_NAME = /^\/(?:[A-Za-z0-9_.\-\/]|\$\{environment\})+$/;
const SsmName = z.string().max(2048).regex(SSM_NAME, {
  message: "must be an SSM parameter name with a leading / (letters, digits, _ . - /; ${environment} for the node's environment), like /prod/db/url",
}).meta({ examples: ["/production/db/url", "/${environment}/db/url"] });

export const SecretRef = z.strictObject({
  ssm: SsmName.optional().meta({ description: "An SSM Parameter Store name (SecureStrings are decrypted)." }),
  secret: z.string().min(1).max(2048).optional().meta({ description: "A Secrets Manager secret: its ARN or name." }),
  key: z.string().min(1).optional().meta({ description: "With secret: the field of the JSON secret string to use." }),
}).superRefine((r, ctx) => {
  if (r.ssm !== undefined && r.secret !== undefined) {
    ctx.addIssue({ code: "custom", message: "takes either ssm: (a Parameter Store name) or secret: (a Secrets Manager ARN or name), not both: keep one" });
  } else if (r.ssm === undefined && r.secret === undefined) {
    ctx.addIssue({ code: "custom", message: "a secret reference needs ssm: /path/name or secret: <ARN or name>" });
  } else if (r.key !== undefined && r.ssm !== undefined) {
    ctx.addIssue({ code: "custom", message: "key: picks a field of a Secrets Manager JSON secret; drop it for an ssm: parameter" });
  }
}).meta({ description: "A secret: { ssm: /path/name } or { secret: <ARN or name>, key: field }." });

const Env = z.record(EnvName, z.union([PlainValue, SecretRef]));

/** Every parameter under an SSM path, each name (the part after the path) uppercased, as chamber does. */
const SecretsImport = { ssmPath: SsmName.meta({ description: "Every parameter directly under this path becomes a variable: its last name part uppercased, '-' and '.' as '_'.", examples: ["/${environment}/web/"] }) };

const UnixUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, { message: "must be a Unix user name (lowercase, at most 32 characters)" }).meta({ examples: ["app"] });
const Signal = z.enum(["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL"]);
const Port = z.number().int().min(1).max(65535);

// ---------- manifests/<environment>.yaml ----------

const VolumeBinding = z.union([
  z.strictObject({ id: z.string().regex(/^vol-[0-9a-f]{8,17}$/, { message: "must be an EBS volume id like vol-0123456789abcdef0" })
    .meta({ description: "The EBS volume's id.", examples: ["vol-0123456789abcdef0"] }) }),
  z.strictObject({ tag: z.record(z.string(), z.string()).refine((t) => Object.keys(t).length > 0, { message: "needs at least one tag" })
    .meta({ description: "Tags that select exactly one EBS volume in the node's availability zone.", examples: [{ Name: "db-data" }] }) }),
]).meta({ description: "Which EBS volume backs the role's volume here: { id: vol-... } or { tag: { Key: value } }." });

const TargetGroupArn = z.string().regex(/^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup\/[A-Za-z0-9-]{1,32}\/[0-9a-f]{16}$/, {
  message: "must be a target group ARN like arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
});
const TargetGroupBinding = z.strictObject({
  arn: TargetGroupArn.meta({ description: "The target group's ARN (target type instance)." }),
  port: Port.meta({ description: "The port the node is registered with (where the role's process listens), 1-65535.", examples: [8080] }),
  drain: Duration.prefault("30s").meta({ description: "How long the node waits for the group to stop draining it before traffic is taken away." }),
}).meta({ description: "A load balancer target group the node registers itself in once its processes are healthy." });

export const RoleBinding = z.strictObject({
  addresses: z.array(z.string().regex(/^eipalloc-[0-9a-f]{8,17}$/, { message: "must be an Elastic IP allocation id like eipalloc-0a1b2c3d" }))
    .optional().meta({ description: "Elastic IP pool (allocation ids); each node of a role with `address: true` holds one." }),
  env: Env.optional().meta({ description: "Environment variables for every process of the role in this environment." }),
  secrets: z.strictObject({ ssmPath: SecretsImport.ssmPath.optional(), refresh: Duration.prefault("5m").meta({ description: "How often secrets are looked at again (jittered); a new version restarts the processes using it." }) })
    .optional().meta({ description: "Secrets for every process of the role here: a path import, and how often to refresh." }),
  volumes: z.record(Name, VolumeBinding).optional().meta({ description: "Binds each volume the role declares to an EBS volume." }),
  commit: Commit.optional().meta({ description: "This role runs another commit (a canary)." }),
  targetGroups: z.array(TargetGroupBinding).optional().meta({ description: "Load balancer target groups each node of the role registers in (RegisterTargets) once healthy, and leaves (draining) before traffic is taken away." }),
});

export const Manifest = z.strictObject({
  commit: Commit.meta({ description: "The release: a commit of this repository." }),
  poll: Duration.prefault("30s").meta({ description: "How often agents look at the branch tip." }),
  rollout: z.strictObject({
    waves: z.array(z.union([z.number().int().min(1), Percent])).min(1).superRefine(increasingWaves)
      .meta({ description: "Cumulative share of each role's nodes per wave: a node count (1) or a percentage (25%)." }),
    bake: Duration.prefault("2m").meta({ description: "How long a wave stays healthy before the next one starts (the reader's clock)." }),
    deadline: Duration.prefault("15m").meta({ description: "A peer of an earlier wave neither converged nor failed this long after it was due halts the rollout." }),
    maxFailures: z.number().int().min(1).prefault(1).meta({ description: "Peers with agent:failed=<commit> that halt the rollout (the circuit breaker)." }),
    onFailure: z.enum(["halt", "rollback"]).prefault("halt").meta({ description: "halt: nodes already on the commit keep it; rollback: they go back to their last good release." }),
    store: z.enum(["tags", "dynamodb"]).prefault("tags").meta({ description: "Where nodes publish their rollout state: their EC2 tags, or a DynamoDB table (the node config's rollout.table) for large fleets." }),
    maxInFlight: z.number().int().min(1).optional().meta({ description: "At most this many nodes of a role deploying at once; enforced by conditional write with store: dynamodb, advisory with tags." }),
    lease: Duration.prefault("2m").meta({ description: "store: dynamodb: a deploy slot whose holder's version has not changed this long (the waiter's clock) is free; a peer record unchanged this long that the rollout waits on is checked with EC2." }),
  }).optional().meta({ description: "Roll out in waves; default: all nodes at once." }),
  roles: z.record(Name, RoleBinding).prefault({}).meta({ description: "Per-role bindings for this environment: addresses, env, volumes, canary commit." }),
}).meta({ title: "agent manifest", description: "manifests/<environment>.yaml: the release an environment runs and its bindings." });

// ---------- roles/<role>.yaml ----------

const HealthTiming = {
  interval: Duration.prefault("5s"),
  timeout: Duration.prefault("2s"),
  pass: z.number().int().min(1).prefault(1).meta({ description: "Consecutive passes to become healthy." }),
  fail: z.number().int().min(1).prefault(3).meta({ description: "Failures within the last `window` checks that make it unhealthy." }),
  window: z.number().int().min(1).prefault(3),
  deadline: Duration.prefault("60s").meta({ description: "How long a new process has to become healthy before a cutover gives up." }),
};

export const Health = z.union([
  z.strictObject({ http: z.string().startsWith("/", { message: "must be a URL path starting with /" }), port: Port.optional(), ...HealthTiming }),
  z.strictObject({ tcp: Port, ...HealthTiming }),
  z.strictObject({ command: Command, ...HealthTiming }),
]).meta({ description: "Health check that gates a cutover: { http: /up }, { tcp: 9000 } or { command: bin/check }." });

/** "100MB" in the file, bytes in the program (KB/MB/GB are powers of 1024). */
export const Size = z
  .string()
  .regex(/^[0-9]+(B|KB|MB|GB)$/, { message: "must be a size like 512KB, 100MB or 1GB" })
  .transform((s) => { const m = /^([0-9]+)(B|KB|MB|GB)$/.exec(s)!; return Number(m[1]) * { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[m[2] as "B"]; })
  .meta({ description: "A size: a whole number and a unit, B, KB, MB or GB.", examples: ["100MB"] });

/** A process behind the front (agent front): the public port, and how a cutover moves requests. */
export const Http = z.strictObject({
  port: Port.meta({ description: "The public port the front listens on; the process itself listens on $PORT (a loopback port)." }),
  listen: z.string().min(1).prefault("0.0.0.0").meta({ description: "The address the front listens on." }),
  health: z.string().startsWith("/").optional().meta({ description: "Readiness path the front probes on each instance; without it, a TCP connect." }),
  drain: Duration.prefault("30s").meta({ description: "How long an old instance may finish requests in flight before it is stopped." }),
  hold: Duration.prefault("10s").meta({ description: "How long a request waits while no instance is ready (a singleton restarting), then 503." }),
  maxBody: Size.prefault("100MB").meta({ description: "Larger request bodies get 413." }),
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional()
    .meta({ description: "PEM files (absolute paths, or relative to the release directory): the front terminates TLS on this port." }),
});

export const Process = z.strictObject({
  run: Command.meta({ description: "The command: argv as one string, split like a shell, without shell features." }),
  cwd: RelPath.optional().meta({ description: "Working directory, relative to the release directory (default: the release directory)." }),
  env: Env.prefault({}).meta({ description: "Environment variables of this process." }),
  secrets: z.strictObject(SecretsImport).optional().meta({ description: "Variables from every parameter under an SSM path." }),
  instances: z.number().int().min(1).max(64).prefault(1).meta({ description: "How many copies to run." }),
  http: Http.optional()
    .meta({ description: "The agent fronts the process on this port, for cutovers without dropped requests; the process listens on $PORT (loopback)." }),
  health: Health.optional(),
  stop: z.strictObject({ signal: Signal.prefault("SIGTERM"), timeout: Duration.prefault("30s") }).prefault({ signal: "SIGTERM", timeout: "30s" }),
  restart: z.enum(["always", "on-failure", "never"]).prefault("always").meta({ description: "When the supervisor restarts the process after it exits." }),
  user: UnixUser.optional().meta({ description: "Runs as this user instead of the role's user." }),
  overlap: z.boolean().prefault(true).meta({ description: "false: stop the old process before starting the new one (singletons)." }),
  minUptime: Duration.prefault("3s").meta({ description: "Without a health check, up this long counts as healthy." }),
});

export const SetupStep = z.strictObject({
  run: Command.meta({ description: "Command run in the new release directory before cutover." }),
  inputs: z.array(RelPath).optional().meta({ description: "With outputs: unchanged since the last good release => the step is reused (its outputs copied). Without outputs the step always runs." }),
  outputs: z.array(RelPath).optional().meta({ description: "What the step produces in the release (node_modules): copied from the last good release when the inputs are unchanged, instead of running the step." }),
  timeout: Duration.prefault("10m").meta({ description: "The step fails when it runs longer than this." }),
  stop: z.strictObject({ timeout: Duration.prefault("30s") }).prefault({ timeout: "30s" })
    .meta({ description: "A newer commit cancels a running step with SIGTERM, and SIGKILL after this timeout." }),
  secrets: z.array(EnvName).optional().meta({ description: "Secret variables of the role (env references) this step gets." }),
});

export const Volume = z.strictObject({
  mount: AbsPath.meta({ description: "Where the volume is mounted (absolute)." }),
  fs: z.enum(["ext4", "xfs"]).prefault("ext4").meta({ description: "Filesystem to create on a blank device." }),
  format: z.enum(["if-blank", "never"]).prefault("if-blank").meta({ description: "if-blank: create the filesystem only on a device that has none." }),
  options: z.array(z.string()).prefault(["defaults", "nofail"]).meta({ description: "Mount options." }),
  owner: UnixUser.optional().meta({ description: "Owner of the mount's root directory (default: the role's user)." }),
});

export const Role = z.strictObject({
  packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, { message: "must be a Debian package name" })).prefault([])
    .meta({ description: "Debian/Ubuntu packages, installed with apt-get when missing." }),
  user: UnixUser.prefault("agent-app").meta({ description: "Setup, hooks and processes run as this user; created when missing." }),
  setup: z.array(SetupStep).prefault([]).meta({ description: "Steps run in the new release directory before cutover." }),
  shared: z.array(RelPath).prefault([]).meta({ description: "Paths kept across releases, linked into each release." }),
  volumes: z.record(Name, Volume).prefault({}).meta({ description: "EBS volumes the role needs; each manifest binds them." }),
  address: z.boolean().prefault(false).meta({ description: "Take an Elastic IP from the environment's pool." }),
  processes: z.record(Name, Process).prefault({}).meta({ description: "Processes the agent supervises." }),
  hooks: z.strictObject({
    before_cutover: z.array(Command).prefault([]),
    after_cutover: z.array(Command).prefault([]),
    secrets: z.array(EnvName).optional().meta({ description: "Secret variables of the role (env references) every hook gets." }),
  }).prefault({ before_cutover: [], after_cutover: [] })
    .meta({ description: "Commands run in the release directory around the cutover; a failing before_cutover hook stops it." }),
}).meta({ title: "agent role", description: "roles/<role>.yaml: what a node of this role installs, mounts and runs." });

// ---------- /etc/agent/agent.yaml ----------

export const AWS_SERVICES = ["ec2", "ssm", "secretsmanager", "elbv2", "dynamodb"] as const;
export type AwsService = (typeof AWS_SERVICES)[number];

export const StaticIdentity = z.strictObject({
  role: Name,
  environment: Name,
  instanceId: z.string().min(1),
  region: z.string().prefault("local"),
  zone: z.string().prefault("local-1a"),
});

export const Trust = z.strictObject({
  allowedSigners: AbsPath.optional().meta({ description: "git's allowed_signers file (SSH keys): the node's root of trust." }),
  openpgpKeys: z.array(AbsPath).prefault([]).meta({ description: "Armored OpenPGP public keys whose signatures are trusted." }),
  revokedKeys: AbsPath.optional().meta({ description: "Keys never trusted again, one per line: an SSH public key, SHA256:… or an OpenPGP fingerprint." }),
  require: z.enum(["tip", "tip+release"]).prefault("tip").meta({ description: "tip: the branch tip must be signed; tip+release: the pinned commit too." }),
}).refine((t) => t.allowedSigners || t.openpgpKeys.length > 0, { message: "needs allowedSigners or openpgpKeys: without a trusted key every commit would be refused" })
  .meta({ description: "Verify signed commits before reading them; with it the node never moves back to an older tip." });

export const Config = z.strictObject({
  repo: z.string().regex(/^https?:\/\//, { message: "must be a smart HTTP(S) URL (http:// or https://)" }),
  branch: z.string().min(1).prefault("main"),
  stateDir: AbsPath.prefault("/var/lib/agent"),
  identity: z.union([z.literal("imds"), StaticIdentity]).prefault("imds"),
  tags: z.strictObject({ role: z.string().prefault("Role"), environment: z.string().prefault("Environment") })
    .prefault({ role: "Role", environment: "Environment" }),
  imds: z.strictObject({ endpoint: z.string().prefault("http://169.254.169.254"), timeout: Duration.prefault("2s") })
    .prefault({ endpoint: "http://169.254.169.254", timeout: "2s" }),
  aws: z.strictObject({
    endpoint: z.string().nullable().prefault(null).meta({ description: "The endpoint of every AWS service (stand-ins, VPC endpoints)." }),
    endpoints: z.strictObject(Object.fromEntries(AWS_SERVICES.map((k) => [k, z.string().nullable().prefault(null)])) as Record<AwsService, z.ZodPrefault<z.ZodNullable<z.ZodString>>>)
      .prefault({}).meta({ description: "Per service; wins over AWS_ENDPOINT_URL_<SERVICE>, which wins over endpoint." }),
  }).prefault({ endpoint: null }),
  auth: z.strictObject({ tokenFile: AbsPath.optional(), username: z.string().prefault("x-access-token") }).optional(),
  devices: z.strictObject({ byIdDir: AbsPath.prefault("/dev/disk/by-id") }).prefault({ byIdDir: "/dev/disk/by-id" }),
  control: z.strictObject({ metrics: z.string().nullable().prefault("127.0.0.1:9464") }).prefault({ metrics: "127.0.0.1:9464" }),
  allowForcePush: z.boolean().prefault(false),
  trust: Trust.optional(),
  rollout: z.strictObject({ table: z.string().regex(/^[A-Za-z0-9_.-]{3,255}$/, { message: "must be a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)" }).optional()
    .meta({ description: "The DynamoDB table of manifests with rollout.store: dynamodb (docs/fleet.md)." }) }).optional(),
}).refine((c) => !(c.trust && c.allowForcePush), {
  path: ["allowForcePush"], message: "cannot be true with trust: (a verified node never moves to a tip that does not descend from the last one); remove it, and roll back with a new signed commit",
}).meta({ title: "agent settings", description: "/etc/agent/agent.yaml: the node's own settings." });

export type Manifest = z.output<typeof Manifest>;
export type RoleBinding = z.output<typeof RoleBinding>;
export type Role = z.output<typeof Role>;
export type Process = z.output<typeof Process>;
export type Health = z.output<typeof Health>;
export type SetupStep = z.output<typeof SetupStep>;
export type Volume = z.output<typeof Volume>;
export type Config = z.output<typeof Config>;
export type SecretRef = z.output<typeof SecretRef>;
export type EnvValue = string | SecretRef;
export type StaticIdentity = z.output<typeof StaticIdentity>;
export type TrustConfig = z.output<typeof Trust>;

export const SCHEMAS = { manifest: Manifest, role: Role, config: Config } as const;
export type FileKind = keyof typeof SCHEMAS;
