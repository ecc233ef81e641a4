// The EC2 Query API wire format for the stand-in: reading form parameters (Name.N, Filter.N.Value.M,
// Tag.N.Key), matching filters, and writing XML answers and <Errors> bodies with escaped values.
import { randomUUID } from "node:crypto";

export const EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/";

/** An API error: the HTTP status and the Code the SDK turns into e.name. */
export class Ec2Fault extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export const missing = (name: string) => new Ec2Fault(400, "MissingParameter", `The request must contain the parameter ${name}`);

export type Params = Record<string, string>;

/** A required scalar parameter, or MissingParameter. */
export function required(p: Params, name: string): string {
  const v = p[name];
  if (v === undefined || v === "") throw missing(name);
  return v;
}

/** Values of a list parameter: Name.1, Name.2, ... in index order. */
export function list(p: Params, name: string): string[] {
  const re = new RegExp(`^${name.replace(/\./g, "\\.")}\\.(\\d+)$`);
  return Object.keys(p)
    .map((k) => [k, re.exec(k)?.[1]] as const)
    .filter((e): e is readonly [string, string] => e[1] !== undefined)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map(([k]) => p[k]!);
}

export interface Filter { name: string; values: string[] }

/** Filter.N.Name with Filter.N.Value.M. */
export function filters(p: Params): Filter[] {
  const out: Filter[] = [];
  for (const key of Object.keys(p)) {
    const m = /^Filter\.(\d+)\.Name$/.exec(key);
    if (!m) continue;
    out.push({ name: p[key]!, values: list(p, `Filter.${m[1]}.Value`) });
  }
  return out;
}

/** Tag.N.Key / Tag.N.Value pairs (CreateTags). */
export function tagParams(p: Params): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(p)) {
    const m = /^Tag\.(\d+)\.Key$/.exec(key);
    if (m) out[p[key]!] = p[`Tag.${m[1]}.Value`] ?? "";
  }
  return out;
}

function glob(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/**
 * Does a resource pass every filter? `fields(name)` gives the resource's values for a filter name
 * (undefined for a name the stand-in does not know: InvalidParameterValue, as EC2 answers).
 * Within a filter, any value matches (with * and ? wildcards); across filters, all must.
 * tag:<Key> and tag-key are handled here from the resource's tags.
 */
export function matches(fs: Filter[], tags: Record<string, string>, fields: (name: string) => string[] | undefined): boolean {
  return fs.every((f) => {
    let have: string[] | undefined;
    if (f.name.startsWith("tag:")) {
      const v = tags[f.name.slice(4)];
      have = v === undefined ? [] : [v];
    } else if (f.name === "tag-key") have = Object.keys(tags);
    else if (f.name === "tag-value") have = Object.values(tags);
    else have = fields(f.name);
    if (have === undefined) throw new Ec2Fault(400, "InvalidParameterValue", `The filter '${f.name}' is invalid`);
    return f.values.some((want) => have.some((h) => glob(want).test(h)));
  });
}

export type XmlValue = string | number | boolean | Date | undefined | XmlValue[] | { [k: string]: XmlValue };

export function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

function scalar(v: string | number | boolean | Date): string {
  return escapeXml(v instanceof Date ? v.toISOString() : String(v));
}

/** Children of an element: arrays become <item> lists, objects nest, undefined is left out. */
export function renderXml(obj: { [k: string]: XmlValue }): string {
  let out = "";
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    out += `<${k}>${renderValue(v)}</${k}>`;
  }
  return out;
}

function renderValue(v: XmlValue): string {
  if (v === undefined) return "";
  if (Array.isArray(v)) return v.map((i) => `<item>${renderValue(i)}</item>`).join("");
  if (v instanceof Date || typeof v !== "object") return scalar(v);
  return renderXml(v);
}

/** A tagSet as EC2 writes it. */
export function tagSet(tags: Record<string, string> | undefined): XmlValue[] {
  return Object.entries(tags ?? {}).map(([key, value]) => ({ key, value }));
}

export function successXml(action: string, body: { [k: string]: XmlValue }): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XMLNS}"><requestId>${randomUUID()}</requestId>${renderXml(body)}</${action}Response>`;
}

export function errorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${randomUUID()}</RequestID></Response>`;
}
