// The JSON Schema that `agent schema` prints: structurally sound draft 2020-12, and the example
// files satisfy the rules it states (required fields, patterns, no unknown fields).
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { jsonSchema } from "../../agent/cli/schema.ts";

const ROOT = join(import.meta.dir, "../..");
type S = Record<string, any>;

/** A small checker for the keywords our schemas use: type, required, properties, additionalProperties, pattern, items, anyOf, enum, const, minimum. */
function check(schema: S, v: unknown, at = "$"): string[] {
  if (schema.anyOf) return (schema.anyOf as S[]).some((s) => check(s, v, at).length === 0) ? [] : [`${at}: matches no anyOf branch`];
  const errs: string[] = [];
  const types = schema.type ? [schema.type].flat() : [];
  const kind = Array.isArray(v) ? "array" : v === null ? "null" : Number.isInteger(v) ? "integer" : typeof v;
  if (types.length && !types.some((t: string) => t === kind || (t === "number" && kind === "integer"))) return [`${at}: ${kind} is not ${types.join("|")}`];
  if (schema.enum && !schema.enum.includes(v)) errs.push(`${at}: not in enum`);
  if (schema.const !== undefined && schema.const !== v) errs.push(`${at}: not the const`);
  if (typeof v === "string" && schema.pattern && !new RegExp(schema.pattern).test(v)) errs.push(`${at}: "${v}" does not match ${schema.pattern}`);
  if (typeof v === "number" && schema.minimum !== undefined && v < schema.minimum) errs.push(`${at}: below minimum`);
  if (Array.isArray(v) && schema.items) v.forEach((x, i) => errs.push(...check(schema.items, x, `${at}[${i}]`)));
  if (kind === "object") {
    const o = v as Record<string, unknown>;
    for (const r of schema.required ?? []) if (!(r in o)) errs.push(`${at}: missing ${r}`);
    for (const [k, x] of Object.entries(o)) {
      if (schema.propertyNames?.pattern && !new RegExp(schema.propertyNames.pattern).test(k)) errs.push(`${at}.${k}: bad name`);
      const sub = schema.properties?.[k] ?? (typeof schema.additionalProperties === "object" ? schema.additionalProperties : undefined);
      if (sub) errs.push(...check(sub, x, `${at}.${k}`));
      else if (schema.additionalProperties === false) errs.push(`${at}.${k}: unknown field`);
    }
  }
  return errs;
}

describe("agent schema", () => {
  const manifest = jsonSchema("manifest"), role = jsonSchema("role"), config = jsonSchema("config");

  test("each is a draft 2020-12 object schema with an $id and a title", () => {
    for (const [k, s] of [["manifest", manifest], ["role", role], ["config", config]] as const) {
      expect(s.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
      expect(s.$id).toBe(`${k}.json`);
      expect(s.type).toBe("object");
      expect(s.additionalProperties).toBe(false);
      expect(typeof s.title).toBe("string");
    }
  });

  test("the manifest requires commit, a 40-hex string, and knows its fields", () => {
    const s = manifest as S;
    expect(s.required).toEqual(["commit"]);
    expect(s.properties.commit.pattern).toBe("^[0-9a-f]{40}$");
    expect(Object.keys(s.properties).sort()).toEqual(["commit", "poll", "roles", "rollout"]);
    expect(s.properties.poll.pattern).toBe("^[0-9]+(ms|s|m|h)$");
    expect(s.properties.poll.default).toBe("30s");     // input side: defaults shown, not required
    expect(s.properties.roles.propertyNames.pattern).toBe("^[a-z][a-z0-9-]{0,62}$");
  });

  test("the role's health is one of three closed shapes; processes need run", () => {
    const proc = (role as S).properties.processes.additionalProperties;
    expect(proc.required).toEqual(["run"]);
    expect(proc.additionalProperties).toBe(false);
    const branches = proc.properties.health.anyOf as S[];
    expect(branches.map((b) => b.required)).toEqual([["http"], ["tcp"], ["command"]]);
    expect(branches.every((b) => b.additionalProperties === false)).toBe(true);
    expect(typeof proc.properties.run.description).toBe("string");
  });

  test("the config requires repo", () => expect((config as S).required).toEqual(["repo"]));

  test("the checker catches what the schema forbids", () => {
    expect(check(manifest, { poll: "30s" })).toEqual(["$: missing commit"]);
    expect(check(manifest, { commit: "abc" })).toEqual(['$.commit: "abc" does not match ^[0-9a-f]{40}$']);
    expect(check(manifest, { commit: "a".repeat(40), pol: "1s" })).toEqual(["$.pol: unknown field"]);
    expect(check(role, { processes: { web: { run: "x", health: { htp: "/up" } } } })).toEqual(["$.processes.web.health: matches no anyOf branch"]);
  });

  for (const [dir, kind] of [["manifests", "manifest"], ["roles", "role"]] as const) {
    for (const f of readdirSync(join(ROOT, dir)).filter((f) => f.endsWith(".yaml"))) {
      test(`${dir}/${f} satisfies the ${kind} schema`, () => {
        expect(check(jsonSchema(kind), parse(readFileSync(join(ROOT, dir, f), "utf8")))).toEqual([]);
      });
    }
  }
});
