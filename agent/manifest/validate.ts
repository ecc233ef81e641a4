// Rules that span files of one checkout: manifests name roles that exist, bind every volume a
// role declares, give `address: true` roles an address pool. Pure: takes {path, text}, reads nothing.
// It checks the checkout as it is: a manifest pins a commit whose roles/ may differ from this tree.
import { NAME_PATTERN, type Manifest, type Role } from "./schema.ts";
import { analyze, byPosition, type Locate, type Problem } from "./parse.ts";
import { didYouMean } from "./suggest.ts";
import type { Seg } from "./explain.ts";

/** One file of the checkout; `path` is relative to it ("manifests/production.yaml"); `size` when `text` is cut short. */
export interface RepoFile { path: string; text: string | Uint8Array; size?: number }

interface Loaded<T> { name: string; file: string; value?: T; locate: Locate }

const NAME = new RegExp(NAME_PATTERN);
const NAME_RULE = "lowercase letters, digits and '-', starting with a letter, at most 63 characters";

/**
 * Every problem in manifests/*.yaml and roles/*.yaml of one checkout, sorted by file and position;
 * [] when the checkout is valid. Files outside manifests/ and roles/ are ignored. Advice that does
 * not make the checkout invalid is appended to `warnings`.
 */
export function validateRepo(files: readonly RepoFile[], warnings: Problem[] = []): Problem[] {
  const problems: Problem[] = [];
  const manifests: Loaded<Manifest>[] = [];
  const roles = new Map<string, Loaded<Role>>();
  for (const f of files) {
    const m = /^(manifests|roles)\/([^/]+?)\.(yaml|yml)$/.exec(f.path);
    if (!m) continue;
    const [, dir, name, ext] = m as unknown as [string, "manifests" | "roles", string, string];
    const what = dir === "manifests" ? "environment" : "role";
    if (ext === "yml") {
      problems.push(whole(f.path, `the agent reads only ${dir}/<${what}>.yaml: rename this file to ${dir}/${name}.yaml`));
      continue;
    }
    if (!NAME.test(name)) {
      problems.push(whole(f.path, `'${name}' is not a valid ${what} name (the file name is the ${what}'s name): use ${NAME_RULE}`));
    }
    const a = analyze(dir === "manifests" ? "manifest" : "role", f.text, f.path, f.size);
    if (!a.result.ok) problems.push(...a.result.problems);
    const loaded = { name, file: f.path, value: a.result.ok ? a.result.value : undefined, locate: a.locate };
    if (dir === "manifests") manifests.push(loaded as Loaded<Manifest>);
    else roles.set(name, loaded as Loaded<Role>);
  }
  for (const r of roles.values()) if (r.value) problems.push(...roleProblems(r as Required<Loaded<Role>>, warnings));
  for (const m of manifests) if (m.value) problems.push(...bindingProblems(m as Required<Loaded<Manifest>>, roles));
  for (const m of manifests) if (m.value?.rollout) problems.push(...rolloutProblems(m as Required<Loaded<Manifest>>, roles));
  return problems.sort(byPosition);
}

function whole(file: string, message: string): Problem {
  return { file, line: 0, column: 0, path: "", message };
}

/** One manifest against the roles it binds. */
function bindingProblems(m: Required<Loaded<Manifest>>, roles: Map<string, Loaded<Role>>): Problem[] {
  const out: Problem[] = [];
  const at = (path: Seg[], where: "key" | "value", message: string) =>
    out.push({ file: m.file, ...m.locate(path, where), path: path.join("."), message });
  for (const [name, binding] of Object.entries(m.value.roles)) {
    const role = roles.get(name);
    if (!role) {
      at(["roles", name], "key", `role '${name}' has no file roles/${name}.yaml${didYouMean(name, [...roles.keys()])}`);
      continue;
    }
    if (!role.value) continue;    // its own problems are reported with its file
    const declared = Object.keys(role.value.volumes);
    for (const v of declared) {
      if (binding.volumes?.[v]) continue;
      at(["roles", name, "volumes", v], "key",
        `role '${name}' declares volume '${v}' (${role.file}) but this environment does not bind it: ` +
        `add volumes: { ${v}: { id: vol-... } } or { ${v}: { tag: { Name: ... } } } under roles.${name}`);
    }
    for (const v of Object.keys(binding.volumes ?? {})) {
      if (declared.includes(v)) continue;
      const known = declared.length ? `it declares ${declared.map((d) => `'${d}'`).join(", ")}` : "it declares no volumes";
      at(["roles", name, "volumes", v], "key",
        `role '${name}' declares no volume '${v}' in ${role.file}${didYouMean(v, declared) || `; ${known}`}`);
    }
    const pool = binding.addresses ?? [];
    if (role.value.address && pool.length === 0) {
      at(["roles", name, "addresses"], "key",
        `role '${name}' takes an Elastic IP (address: true in ${role.file}) but this environment has no pool: ` +
        `add addresses: [eipalloc-...] under roles.${name}`);
    }
    if (!role.value.address && pool.length > 0) {
      at(["roles", name, "addresses"], "key",
        `role '${name}' does not take an Elastic IP: set address: true in ${role.file}, or remove these addresses`);
    }
  }
  return out;
}

/**
 * Rules inside one role that the schema cannot say: two processes cannot front the same port, and
 * copies of a process with a fixed PORT in its env would all bind that one port.
 */
function roleProblems(r: Required<Loaded<Role>>, warnings: Problem[]): Problem[] {
  const out: Problem[] = [];
  for (const [i, step] of r.value.setup.entries()) {
    if (!step.inputs?.length || step.outputs?.length) continue;
    warnings.push({ file: r.file, ...r.locate(["setup", i, "inputs"], "key"), path: `setup.${i}.inputs`,
      message: `warning: a step with inputs but no outputs cannot be reused (nothing to carry into the next release), so it runs in every release: list what it makes under outputs: (node_modules)` });
  }
  const ports = new Map<number, string>();
  for (const [name, p] of Object.entries(r.value.processes)) {
    if (p.env.PORT !== undefined && p.instances > 1 && !p.http) {
      out.push({ file: r.file, ...r.locate(["processes", name, "instances"], "value"), path: `processes.${name}.instances`,
        message: `${p.instances} copies would all get PORT=${p.env.PORT} from env and only one can bind it: ` +
          `use instances: 1, or remove PORT from env (each copy then gets its own $PORT when it has an HTTP check)` });
    }
    if (!p.http) continue;
    // The front has one route per public port; copies (instances: N) share their process's route,
    // each on a loopback port of its own.
    const at = (...field: Seg[]) => ({ file: r.file, ...r.locate(["processes", name, ...field], "value"), path: ["processes", name, ...field].join(".") });
    const other = ports.get(p.http.port);
    if (other) out.push({ ...at("http", "port"), message: `port ${p.http.port} is already fronted for process '${other}': give each process its own port (instances: N for copies)` });
    else ports.set(p.http.port, name);
  }
  return out;
}

/**
 * A wave is judged healthy after `bake`; a bake shorter than a process's health deadline would let
 * the next wave start before the earlier one's health checks could fail. Every role of the checkout
 * may run in the environment, so every role's health deadlines count.
 */
function rolloutProblems(m: Required<Loaded<Manifest>>, roles: Map<string, Loaded<Role>>): Problem[] {
  const bake = m.value.rollout!.bake;
  let worst: { ms: number; where: string } | null = null;
  for (const r of roles.values()) {
    for (const [name, p] of Object.entries(r.value?.processes ?? {})) {
      if (p.health && p.health.deadline > bake && p.health.deadline > (worst?.ms ?? 0)) {
        worst = { ms: p.health.deadline, where: `process '${name}' of ${r.file}` };
      }
    }
  }
  if (!worst) return [];
  return [{ file: m.file, ...m.locate(["rollout", "bake"], "value"), path: "rollout.bake",
    message: `bake ${seconds(bake)} is shorter than the health deadline ${seconds(worst.ms)} of ${worst.where}: ` +
      `the next wave would start before that health check can fail; use bake: ${seconds(worst.ms)} or more` }];
}

const seconds = (ms: number) => ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
