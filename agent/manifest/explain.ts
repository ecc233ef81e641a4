// Turns zod's issues into plain sentences and a place to point at: "expected X, got Y",
// "unknown field 'x'; did you mean 'y'?", a union failure as "one of {http}, {tcp} or {command}". Pure.
import type { z } from "zod";
import { didYouMean, oneOf } from "./suggest.ts";

export type Seg = string | number;

/** A problem before it has a line and column: `at` says which YAML node to point at. */
export interface RawProblem {
  path: Seg[];
  at: "key" | "value" | "missing";   // the key itself, its value, or (missing) the mapping that lacks it
  message: string;
}

// The part of zod's schema definitions this file reads.
interface Def {
  type: string;
  innerType?: Schema; in?: Schema; shape?: Record<string, Schema>; valueType?: Schema; element?: Schema;
  options?: Schema[]; values?: unknown[]; entries?: Record<string, unknown>;
}
interface Schema { _zod: { def: Def }; meta?: () => Record<string, unknown> | undefined; isOptional?: () => boolean }

const WRAPPERS = new Set(["optional", "nullable", "prefault", "default", "readonly", "nonoptional", "catch"]);

const defOf = (s: Schema): Def => s._zod.def;

/** The schema under optional/default/pipe wrappers. */
function unwrap(s: Schema): Schema {
  for (;;) {
    const d = defOf(s);
    if (WRAPPERS.has(d.type) && d.innerType) s = d.innerType;
    else if (d.type === "pipe" && d.in) s = d.in;
    else return s;
  }
}

/** Description and examples from the first wrapper layer that has them. */
function metaOf(s: Schema): { description?: string; examples?: unknown[] } {
  let cur: Schema | undefined = s;
  const out: { description?: string; examples?: unknown[] } = {};
  while (cur) {
    const m = cur.meta?.();
    if (m?.description && !out.description) out.description = String(m.description);
    if (Array.isArray(m?.examples) && !out.examples) out.examples = m.examples;
    const d = defOf(cur);
    cur = WRAPPERS.has(d.type) ? d.innerType : d.type === "pipe" ? d.in : undefined;
  }
  return out;
}

function childOf(s: Schema, seg: Seg): Schema | undefined {
  const d = defOf(unwrap(s));
  if (d.type === "object") return d.shape?.[String(seg)];
  if (d.type === "record") return d.valueType;
  if (d.type === "array") return d.element;
  if (d.type === "union") for (const o of d.options ?? []) { const c = childOf(o, seg); if (c) return c; }
  return undefined;
}

function schemaAt(root: Schema, path: Seg[]): Schema | undefined {
  let s: Schema | undefined = root;
  for (const seg of path) s = s && childOf(s, seg);
  return s;
}

/** The field names an object schema (or any branch of a union) accepts. */
export function knownKeys(s: Schema | undefined): string[] {
  if (!s) return [];
  const d = defOf(unwrap(s));
  if (d.type === "object") return Object.keys(d.shape ?? {});
  if (d.type === "union") return [...new Set((d.options ?? []).flatMap(knownKeys))];
  return [];
}

function valueAt(data: unknown, path: Seg[]): unknown {
  let v = data;
  for (const seg of path) v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[String(seg)] : undefined;
  return v;
}

/** A value in plain words: `"30 seconds"`, `the number 30`, `a list`, `a mapping with keys a, b`. */
export function describeValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "an empty value";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v);
  if (typeof v === "number") return `the number ${v}`;
  if (typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return v.length ? "a list" : "an empty list";
  const keys = Object.keys(v as object);
  return keys.length ? `a mapping with ${keys.length === 1 ? "key" : "keys"} ${keys.join(", ")}` : "an empty mapping";
}

/** What a schema accepts, in plain words: `text like "30s"`, `a whole number`, `{http}`. */
export function describeSchema(s: Schema | undefined): string {
  if (!s) return "something else";
  const u = unwrap(s);
  const d = defOf(u);
  const ex = metaOf(s).examples?.[0];
  switch (d.type) {
    case "string": return ex !== undefined ? `text like ${JSON.stringify(ex)}` : "text";
    case "number": return (u as unknown as { isInt?: boolean }).isInt ? "a whole number" : "a number";
    case "boolean": return "true or false";
    case "array": return "a list";
    case "record": return "a mapping (name: value)";
    case "object": {
      const required = Object.entries(d.shape ?? {}).filter(([, c]) => !c.isOptional?.()).map(([k]) => k);
      return `{${required.join(", ")}}`;
    }
    case "literal": return oneOf((d.values ?? []).map((v) => JSON.stringify(v)));
    case "enum": return oneOf(Object.values(d.entries ?? {}).map((v) => JSON.stringify(v)));
    case "union": return oneOf((d.options ?? []).map(describeSchema));
    case "null": return "null";
    default: return d.type;
  }
}

const isDefaultMessage = (m: string) => /^(Invalid|Too (small|big)|Unrecognized)/.test(m);
const got = (v: unknown) => (v === undefined ? "" : ` (got ${describeValue(v)})`);
const sentence = (s: string) => s.replace(/\.$/, "").replace(/^[A-Z](?=[a-z])/, (c) => c.toLowerCase());

type Issue = z.core.$ZodIssue;

/** Every zod issue of one parse as RawProblems; `base` prefixes paths (used for union branches). */
export function explainIssues(issues: readonly Issue[], root: Schema, data: unknown, base: Seg[] = []): RawProblem[] {
  return issues.flatMap((i) => explainIssue(i, root, data, base));
}

function explainIssue(issue: Issue, root: Schema, data: unknown, base: Seg[]): RawProblem[] {
  const rel = issue.path as Seg[];
  const path = [...base, ...rel];
  const value = valueAt(data, rel);
  const here = schemaAt(root, rel);
  const custom = !isDefaultMessage(issue.message);
  switch (issue.code) {
    case "unrecognized_keys": {
      const known = knownKeys(here);
      return issue.keys.map((k) => ({
        path: [...path, k], at: "key" as const,
        message: `unknown field '${k}'${didYouMean(k, known) || (known.length ? `; known fields: ${known.join(", ")}` : "")}`,
      }));
    }
    case "invalid_type": {
      if (value === undefined) {
        const desc = metaOf(here ?? root).description;
        return [{ path, at: "missing", message: `required, but missing${desc ? ` (${sentence(desc)})` : ""}` }];
      }
      const hint = typeof value === "number" && issue.expected === "string" ? "; put it in quotes if it is meant as text" : "";
      return [{ path, at: "value", message: `expected ${describeSchema(here)}, got ${describeValue(value)}${hint}` }];
    }
    case "invalid_value": {
      const words = issue.values.map((v) => String(v));
      const typo = typeof value === "string" ? didYouMean(value, words) : "";
      return [{ path, at: "value", message: `must be ${oneOf(issue.values.map((v) => JSON.stringify(v)))}, got ${describeValue(value)}${typo}` }];
    }
    case "invalid_key": {
      const inner = issue.issues[0];
      const why = inner && !isDefaultMessage(inner.message) ? inner.message : "is not an accepted name";
      return [{ path, at: "key", message: `the name '${String(rel[rel.length - 1])}' ${why}` }];
    }
    case "invalid_union":
      return explainUnion(issue.errors, here, value, path);
    case "too_small":
    case "too_big": {
      if (custom) return [{ path, at: "value", message: issue.message + got(value) }];
      const n = Number((issue as { minimum?: unknown }).minimum ?? (issue as { maximum?: unknown }).maximum);
      const small = issue.code === "too_small";
      const message =
        issue.origin === "array" ? (small ? `needs at least ${n} ${n === 1 ? "entry" : "entries"}` : `allows at most ${n} entries`)
        : issue.origin === "string" ? (small && n === 1 ? "must not be empty" : `must be ${small ? "at least" : "at most"} ${n} characters long`)
        : `must be ${small ? "at least" : "at most"} ${n}${got(value)}`;
      return [{ path, at: "value", message }];
    }
    case "invalid_format": {
      if (custom) return [{ path, at: "value", message: issue.message + got(value) }];
      const f = issue as { format: string; prefix?: string; suffix?: string; pattern?: string };
      const rule = f.format === "starts_with" ? `must start with "${f.prefix}"`
        : f.format === "ends_with" ? `must end with "${f.suffix}"`
        : f.pattern ? `must match ${f.pattern}` : `must be a valid ${f.format}`;
      return [{ path, at: "value", message: rule + got(value) }];
    }
    default: {
      // A message that quotes the value already (a command's own problem) does not repeat it.
      const quoted = typeof value === "string" && value.trim() !== "" && issue.message.includes(value.trim());
      return [{ path, at: "value", message: (custom ? issue.message : sentence(issue.message)) + (quoted ? "" : got(value)) }];
    }
  }
}

/**
 * A union failed. When the value plainly meant one branch (its type matches and the branch's
 * distinguishing field is there), report that branch's problems; otherwise list the choices.
 */
function explainUnion(branches: readonly (readonly Issue[])[], union: Schema | undefined, value: unknown, path: Seg[]): RawProblem[] {
  const options = union ? defOf(unwrap(union)).options ?? [] : [];
  const given = value !== null && typeof value === "object" ? Object.keys(value) : [];
  // A branch is out when the value's type does not fit it, or when it lacks a required field and
  // shares no field with the value (so {htp: /up} is not mistaken for a broken {tcp}).
  const mismatch = (e: Issue, keys: string[]) =>
    (e.path.length === 0 && (e.code === "invalid_type" || e.code === "invalid_value")) ||
    (e.path.length === 1 && e.code === "invalid_type" && valueAt(value, e.path as Seg[]) === undefined &&
      !given.some((k) => keys.includes(k)));
  const plausible = branches
    .map((errs, i) => ({ errs, schema: options[i] }))
    .filter((b) => b.schema && !b.errs.some((e) => mismatch(e, knownKeys(b.schema))))
    .sort((a, b) => a.errs.length - b.errs.length);
  const clear = plausible.length === 1 || (plausible.length > 1 && plausible[0]!.errs.length < plausible[1]!.errs.length);
  if (clear) return explainIssues(plausible[0]!.errs, plausible[0]!.schema!, value, path);
  const choices = oneOf(options.map(describeSchema));
  const all = options.flatMap(knownKeys);
  const typos = given.filter((k) => !all.includes(k)).map((k) => didYouMean(k, all)).filter(Boolean);
  const allTypes = branches.every((errs) => errs.some((e) => e.path.length === 0 && e.code === "invalid_type"));
  return [{ path, at: "value", message: allTypes ? `expected ${choices}, got ${describeValue(value)}` : `must be one of ${choices}, got ${describeValue(value)}${typos[0] ?? ""}` }];
}
