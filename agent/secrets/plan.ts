// Secrets, the pure part: which references each process (and each setup step or hook) needs,
// how they batch into SSM and Secrets Manager calls, the variables a fetch gives each process, a
// fingerprint of name + source + version (never the value), and what changed between two fetches.
// Pure: no I/O, no clock, no randomness (callers pass `now` and `random`).
import type { EnvValue, Manifest, Role, SecretRef } from "../manifest/schema.ts";
import { MAX_ENV_VALUE } from "../manifest/problem.ts";

/** What one call fetches: an SSM parameter, a Secrets Manager secret, or every parameter under an SSM path. */
export type FetchKey = `ssm:${string}` | `secret:${string}` | `path:${string}`;

/** One layer of a process's environment, lowest precedence first. */
type Layer = { kind: "env"; vars: Record<string, EnvValue> } | { kind: "path"; path: string };

export interface ProcessNeeds {
  layers: Layer[];
  fetches: FetchKey[];
}

/** Everything the role at one commit needs in one environment. */
export interface SecretNeeds {
  processes: Record<string, ProcessNeeds>;
  /** The role-wide set (binding, then every process) that setup steps and hooks pick names from. */
  role: ProcessNeeds;
  /** Every distinct fetch, in a stable order. */
  fetches: FetchKey[];
  refreshMs: number;
}

export type Fetched = { kind: "value"; version: string; value?: string } | { kind: "path"; params: { name: string; version: string; value?: string }[] };
export type Resolution = Record<FetchKey, Fetched>;

/** What status shows of one variable: never its value. */
export interface SecretEntry { name: string; source: string; version: string }

export interface ProcessSecrets {
  /** The secret variables of the process (values only when known). */
  env: Record<string, string>;
  names: string[];
  entries: SecretEntry[];
  /** Covers every secret variable by name, source and version; goes into the process's specHash. */
  fingerprint: string;
  /** True when only versions are known (after an agent restart): the process must not be started with it. */
  pending: boolean;
}

export const DEFAULT_REFRESH_MS = 5 * 60_000;
/** GetParameters takes at most 10 names; GetParametersByPath returns at most 10 per page. */
export const SSM_BATCH = 10;

const isRef = (v: EnvValue): v is SecretRef => typeof v === "object" && v !== null;
const expand = (s: string, environment: string) => s.replaceAll("${environment}", environment);

export function refKey(ref: SecretRef, environment: string): FetchKey {
  return ref.ssm !== undefined ? `ssm:${expand(ref.ssm, environment)}` : `secret:${expand(ref.secret!, environment)}`;
}

/** A path as GetParametersByPath wants it: with a trailing slash, so /prod/web never matches /prod/website. */
export function normalizePath(path: string): string {
  return path.endsWith("/") ? path : `${path}/`;
}

/** The plain (non-secret) variables of an env block; secret references are left to secrets/. */
export function plainEnv(env: Record<string, EnvValue> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env ?? {})) if (!isRef(v)) out[k] = v;
  return out;
}

/**
 * The references of `role` in `environment` with the manifest's binding. Precedence, low to high:
 * the binding's ssmPath, the binding's env, the process's ssmPath, the process's env (as for
 * plain values: a process's own env wins). Empty `fetches` means the role uses no secrets.
 */
export function secretNeeds(role: Role, binding: Manifest["roles"][string] | undefined, environment: string): SecretNeeds {
  const fetchesOf = (layers: Layer[]): FetchKey[] => {
    const out: FetchKey[] = [];
    for (const l of layers) {
      if (l.kind === "path") out.push(`path:${l.path}`);
      else for (const v of Object.values(l.vars)) if (isRef(v)) out.push(refKey(v, environment));
    }
    return [...new Set(out)];
  };
  const bindingLayers: Layer[] = [];
  if (binding?.secrets?.ssmPath) bindingLayers.push({ kind: "path", path: normalizePath(expand(binding.secrets.ssmPath, environment)) });
  if (binding?.env) bindingLayers.push({ kind: "env", vars: expandVars(binding.env, environment) });
  const processes: Record<string, ProcessNeeds> = {};
  const all: Layer[] = [...bindingLayers];
  for (const [name, proc] of Object.entries(role.processes)) {
    const layers = [...bindingLayers];
    if (proc.secrets?.ssmPath) layers.push({ kind: "path", path: normalizePath(expand(proc.secrets.ssmPath, environment)) });
    layers.push({ kind: "env", vars: expandVars(proc.env, environment) });
    processes[name] = { layers, fetches: fetchesOf(layers) };
    all.push(...layers.slice(bindingLayers.length));
  }
  const roleNeeds = { layers: all, fetches: fetchesOf(all) };
  return { processes, role: roleNeeds, fetches: roleNeeds.fetches, refreshMs: binding?.secrets?.refresh ?? DEFAULT_REFRESH_MS };
}

function expandVars(vars: Record<string, EnvValue>, environment: string): Record<string, EnvValue> {
  const out: Record<string, EnvValue> = {};
  for (const [k, v] of Object.entries(vars)) out[k] = isRef(v) ? { ...v, ...(v.ssm ? { ssm: expand(v.ssm, environment) } : { secret: expand(v.secret!, environment) }) } : v;
  return out;
}

/** Split names into GetParameters calls of at most SSM_BATCH names each. */
export function batches<T>(items: readonly T[], size = SSM_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The variable a parameter under an ssmPath becomes: the part after the path, uppercased, '-', '.' and '/' as '_' (chamber's rule). */
export function varName(path: string, parameter: string): string {
  return parameter.slice(path.length).toUpperCase().replace(/[-./]/g, "_");
}

/** A broken secret: which one and what to do. Thrown as an AgentError by the caller. */
export interface SecretProblem { reason: "SecretInvalid" | "SecretNotDeclared"; message: string }

/**
 * The secret variables one process gets from a resolution (see secretNeeds for precedence).
 * Returns a problem for a value over 32 KB, a missing JSON key, or a path parameter whose name
 * is no variable name. Values absent from `res` make the result `pending`.
 */
export function materialize(needs: ProcessNeeds, res: Resolution): { ok: true; value: ProcessSecrets } | { ok: false; problem: SecretProblem } {
  const env: Record<string, string> = {};
  const entries = new Map<string, SecretEntry>();
  let pending = false;
  const put = (name: string, value: string | undefined, entry: SecretEntry): SecretProblem | null => {
    if (value === undefined) pending = true;
    else if (value.length > MAX_ENV_VALUE) return invalid(`${entry.source} (for ${name}) is ${Math.ceil(value.length / 1024)} KB, over the 32 KB a variable may hold: store a smaller value, or a path to a file`);
    else env[name] = value;
    entries.set(name, entry);
    return null;
  };
  for (const layer of needs.layers) {
    if (layer.kind === "path") {
      const got = res[`path:${layer.path}`];
      if (!got || got.kind !== "path") { pending = true; continue; }
      for (const p of got.params) {
        const name = varName(layer.path, p.name);
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return { ok: false, problem: invalid(`ssm:${p.name} under ssmPath ${layer.path} gives the variable name '${name}', which is not one: rename the parameter (letters, digits, '_', '-', not starting with a digit)`) };
        const bad = put(name, p.value, { name, source: `ssm:${p.name}`, version: p.version });
        if (bad) return { ok: false, problem: bad };
      }
      continue;
    }
    for (const [name, v] of Object.entries(layer.vars)) {
      if (!isRef(v)) { delete env[name]; entries.delete(name); continue; }   // a plain value of higher precedence wins
      const key = refKey(v, "");
      const got = res[key];
      const source = v.key !== undefined ? `${key}#${v.key}` : key;
      if (!got || got.kind !== "value") { pending = true; entries.set(name, { name, source, version: "?" }); delete env[name]; continue; }
      let value = got.value;
      if (value !== undefined && v.key !== undefined) {
        const picked = pickKey(value, v.key);
        if (!picked.ok) return { ok: false, problem: invalid(`${key} (for ${name}): ${picked.message}`) };
        value = picked.value;
      }
      delete env[name];
      const bad = put(name, value, { name, source, version: got.version });
      if (bad) return { ok: false, problem: bad };
    }
  }
  const list = [...entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  return { ok: true, value: { env, names: list.map((e) => e.name), entries: list, fingerprint: fingerprint(list), pending } };
}

const invalid = (message: string): SecretProblem => ({ reason: "SecretInvalid", message });

function pickKey(secretString: string, key: string): { ok: true; value: string } | { ok: false; message: string } {
  let doc: unknown;
  try { doc = JSON.parse(secretString); } catch { return { ok: false, message: `key: ${key} needs a JSON secret string (an object), and this one is not JSON: drop key:, or store the secret as JSON` }; }
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) return { ok: false, message: `key: ${key} needs a JSON object; the secret string is JSON but not an object` };
  const v = (doc as Record<string, unknown>)[key];
  if (v === undefined) return { ok: false, message: `the JSON secret has no key '${key}' (it has: ${Object.keys(doc).sort().join(", ") || "none"}): fix key: or the secret` };
  return { ok: true, value: typeof v === "string" ? v : JSON.stringify(v) };
}

/** Name, source and version of every variable, in order: equal fingerprints mean the same secrets. */
export function fingerprint(entries: readonly SecretEntry[]): string {
  return entries.map((e) => `${e.name}=${e.source}@${e.version}`).join(";");
}

/**
 * The variables named by a setup step or hook, from the role-wide set. A name no reference
 * provides is a problem (it would be silently empty).
 */
export function pickNamed(all: ProcessSecrets, names: readonly string[], what: string): { ok: true; env: Record<string, string> } | { ok: false; problem: SecretProblem } {
  const env: Record<string, string> = {};
  for (const n of names) {
    if (!all.names.includes(n)) {
      return { ok: false, problem: { reason: "SecretNotDeclared", message: `${what} names the secret ${n}, but no secret reference of the role provides it (env: { ${n}: { ssm: ... } } or an ssmPath parameter): add one or drop the name` } };
    }
    if (all.env[n] !== undefined) env[n] = all.env[n]!;
  }
  return { ok: true, env };
}

/** Which secrets differ between what runs and a new fetch: by name, with both versions. */
export function changedSecrets(before: readonly SecretEntry[], after: readonly SecretEntry[]): { name: string; source: string; from: string | null; to: string | null }[] {
  const a = new Map(before.map((e) => [e.name, e])), b = new Map(after.map((e) => [e.name, e]));
  const out: { name: string; source: string; from: string | null; to: string | null }[] = [];
  for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(name), y = b.get(name);
    if (x && y && x.source === y.source && x.version === y.version) continue;
    out.push({ name, source: (y ?? x)!.source, from: x?.version ?? null, to: y?.version ?? null });
  }
  return out;
}

/** A resolution with every value removed: what may be remembered on disk. */
export function versionsOnly(res: Resolution): Resolution {
  const out: Resolution = {};
  for (const [k, f] of Object.entries(res) as [FetchKey, Fetched][]) {
    out[k] = f.kind === "value" ? { kind: "value", version: f.version } : { kind: "path", params: f.params.map((p) => ({ name: p.name, version: p.version })) };
  }
  return out;
}

/** When to look again: `refresh` from now, jittered by ±10% so a fleet started together spreads out. */
export function nextRefreshAt(now: number, refreshMs: number, random: number): number {
  return now + Math.round(refreshMs * (0.9 + 0.2 * random));
}

/** Full-jitter exponential backoff after a ThrottlingException: attempt 0 waits up to `baseMs`. */
export function throttleDelay(attempt: number, random: number, baseMs = 200, capMs = 10_000): number {
  return Math.round(random * Math.min(capMs, baseMs * 2 ** attempt));
}

/**
 * Calls one refresh makes: GetParameters per 10 names, one GetParametersByPath page per 10
 * parameters under a path (at least one), one GetSecretValue per secret.
 */
export function callsPerRefresh(fetches: readonly FetchKey[], paramsPerPath: (path: string) => number = () => 1): { ssm: number; secretsmanager: number } {
  const names = fetches.filter((f) => f.startsWith("ssm:")).length;
  const paths = fetches.filter((f) => f.startsWith("path:")).map((f) => Math.max(1, Math.ceil(paramsPerPath(f.slice(5)) / SSM_BATCH)));
  return { ssm: Math.ceil(names / SSM_BATCH) + paths.reduce((a, b) => a + b, 0), secretsmanager: fetches.filter((f) => f.startsWith("secret:")).length };
}
