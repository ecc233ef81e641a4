// Text -> typed value, or a list of precise problems (file:line:column: field.path: message).
// Pure: takes text or bytes, never reads files. Checks size, encoding, YAML, then the schema.
import { LineCounter, parseDocument, isAlias, isMap, isNode, isScalar, isSeq, type Document } from "yaml";
import type { z } from "zod";
import { SCHEMAS, type FileKind, type Manifest, type Role, type Config } from "./schema.ts";
import { explainIssues, type RawProblem, type Seg } from "./explain.ts";

import { formatProblem, type Parsed, type Problem } from "./problem.ts";
export { formatProblem, type Parsed, type Problem };

/** Files above this size are refused before parsing: ops files are a few kilobytes. */
export const MAX_FILE_BYTES = 1024 * 1024;

const EXPECTED: Record<FileKind, string> = {
  manifest: "a manifest with at least 'commit: <40-character commit id>'",
  role: "a role with at least 'processes:' or 'setup:'",
  config: "the agent's settings with at least 'repo: https://...'",
};

/** Where to point for a path: `key` for the key node, `value` for its value. */
export type Locate = (path: Seg[], at: RawProblem["at"]) => { line: number; column: number };

/** A parse that also keeps the document, so cross-file rules can point into it. */
export interface Analysis<T> { result: Parsed<T>; locate: Locate; data: unknown }

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/**
 * Bytes -> text, or the problem that makes them not an ops file: over MAX_FILE_BYTES (checked
 * first, so a huge file is never decoded), NUL bytes or invalid UTF-8 ("not a text file").
 * `size` is the file's real size when the caller read only the first bytes of it.
 */
export function decodeText(bytes: Uint8Array, file: string, size = bytes.length): { ok: true; text: string } | { ok: false; problems: Problem[] } {
  const whole = (message: string) => ({ ok: false as const, problems: [{ file, line: 0, column: 0, path: "", message }] });
  if (size > MAX_FILE_BYTES) return whole(`file is ${mib(size)}, over the 1 MiB limit: ops files are small text files; is this the right file?`);
  if (bytes.includes(0)) return whole("not a text file (it contains NUL bytes): expected YAML text in UTF-8");
  try {
    return { ok: true, text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    return whole("not a text file (it is not valid UTF-8): expected YAML text in UTF-8");
  }
}

/**
 * Parse one file of `kind`. Never throws; every problem comes back with its line and column.
 * `size` is the file's real size when `input` holds only its first bytes.
 */
export function analyze<K extends FileKind>(kind: K, input: string | Uint8Array, file: string, size?: number): Analysis<z.output<(typeof SCHEMAS)[K]>> {
  const nowhere: Locate = () => ({ line: 1, column: 1 });
  const fail = (problems: Problem[], locate = nowhere, data: unknown = undefined) => ({ result: { ok: false as const, problems }, locate, data });
  let text: string;
  if (typeof input === "string") {
    const bytes = input.length > MAX_FILE_BYTES ? input.length : new TextEncoder().encode(input).length;
    if (bytes > MAX_FILE_BYTES || input.includes("\0")) {
      const d = decodeText(new Uint8Array(input.includes("\0") ? [0] : []), file, bytes);
      if (!d.ok) return fail(d.problems);
    }
    text = input.replace(/^\uFEFF/, "");
  } else {
    const d = decodeText(input, file, size ?? input.length);
    if (!d.ok) return fail(d.problems);
    text = d.text;
  }

  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false, prettyErrors: false });
  const pos = (offset: number) => { const p = lc.linePos(offset); return { line: p.line, column: p.col }; };
  const problem = (r: RawProblem, locate: Locate): Problem => ({ file, ...locate(r.path, r.at), path: r.path.join("."), message: r.message });

  if (doc.errors.length) {
    return fail(doc.errors.map((e) => ({ file, ...pos(e.pos[0]), path: "", message: yamlMessage(e.code, e.message) })));
  }
  const locate: Locate = (path, at) => locateIn(doc, path, at, pos);
  const dups = yamlTraps(doc, pos);
  if (dups.length) return fail(dups.map((r) => problem(r, locate)), locate);
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    // At 1:1, not "the whole file": editors and CI annotations need a place to point at.
    return fail([{ file, line: 1, column: 1, path: "", message: `file is empty: expected ${EXPECTED[kind]}` }], locate);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return fail([{ file, line: 1, column: 1, path: "", message: `cannot read the YAML: ${e instanceof Error ? e.message : String(e)}` }], locate);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    const got = Array.isArray(data) ? "a list" : `${JSON.stringify(data)}`;
    return fail([{ file, ...pos(doc.contents.range?.[0] ?? 0), path: "", message: `expected ${EXPECTED[kind]} (fields as 'key: value'), got ${got}` }], locate, data);
  }
  const schema = SCHEMAS[kind];
  const parsed = schema.safeParse(data);
  if (parsed.success) return { result: { ok: true, value: parsed.data as z.output<(typeof SCHEMAS)[K]> }, locate, data };
  const raw = explainIssues(parsed.error.issues, schema as never, data);
  return fail(raw.map((r) => problem(r, locate)).sort(byPosition), locate, data);
}

export const byPosition = (a: Problem, b: Problem) =>
  a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column || a.path.localeCompare(b.path);

/** YAML's own messages, minus advice that only applies to its API. */
function yamlMessage(code: string, message: string): string {
  if (code === "MULTIPLE_DOCS") return "more than one YAML document ('---'): keep one document per file";
  return `YAML syntax: ${message.split("\n")[0]!.replace(/ at line \d+, column \d+.*$/, "")}`;
}

type Pos = (offset: number) => { line: number; column: number };

/** Keys that appear twice in one mapping (YAML would silently keep the last one), and aliases without an anchor. */
function yamlTraps(doc: Document, pos: Pos): RawProblem[] {
  const out: RawProblem[] = [];
  const walk = (node: unknown, path: Seg[]) => {
    if (isMap(node)) {
      const seen = new Map<string, number>();
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const at = isNode(pair.key) && pair.key.range ? pair.key.range[0] : undefined;
        if (seen.has(key)) {
          out.push({ path: [...path, key], at: "key", message: `duplicate key '${key}' (first at line ${seen.get(key)}): YAML would keep only the last one; rename or merge them` });
        } else seen.set(key, at === undefined ? 0 : pos(at).line);
        walk(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) node.items.forEach((item, i) => walk(item, [...path, i]));
    else if (isAlias(node) && !node.resolve(doc)) {
      out.push({ path, at: "value", message: `YAML alias *${node.source} has no anchor &${node.source} before it` });
    }
  };
  walk(doc.contents, []);
  return out;
}

/** The line and column of a path's key or value; for a missing one, the mapping that lacks it. */
function locateIn(doc: Document, path: Seg[], at: RawProblem["at"], pos: Pos): { line: number; column: number } {
  const start = (n: unknown) => (isNode(n) && n.range ? pos(n.range[0]) : undefined);
  let node: unknown = doc.contents;
  let keyNode: unknown = undefined;
  let depth = 0;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = [...node.items].reverse().find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (!pair) break;
      node = pair.value; keyNode = pair.key;
    } else if (isSeq(node) && typeof seg === "number" && seg < node.items.length) {
      node = node.items[seg]; keyNode = undefined;
    } else break;
    depth++;
  }
  const fallback = { line: 1, column: 1 };
  if (depth === path.length && at === "value") return start(node) ?? start(keyNode) ?? fallback;
  return start(keyNode) ?? start(node) ?? fallback;
}

export function parseFile<K extends FileKind>(kind: K, text: string | Uint8Array, file: string): Parsed<z.output<(typeof SCHEMAS)[K]>> {
  return analyze(kind, text, file).result;
}

export const parseManifest = (text: string | Uint8Array, file: string): Parsed<Manifest> => parseFile("manifest", text, file);
export const parseRole = (text: string | Uint8Array, file: string): Parsed<Role> => parseFile("role", text, file);
export const parseConfig = (text: string | Uint8Array, file: string): Parsed<Config> => parseFile("config", text, file);

