// Text -> typed value, or a list of precise problems (file:line:column: field.path: message).
// Pure: takes text, never reads files.
import { LineCounter, parseDocument, isNode, type Document } from "yaml";
import type { z } from "zod";
import { SCHEMAS, type FileKind, type Manifest, type Role, type Config } from "./schema.ts";

export interface Problem {
  file: string;
  line: number;       // 1-based; 0 when unknown
  column: number;     // 1-based; 0 when unknown
  path: string;       // "processes.web.run"; "" for the whole file
  message: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

export function formatProblem(p: Problem): string {
  const where = p.line ? `${p.file}:${p.line}:${p.column}` : p.file;
  return `${where}: ${p.path ? p.path + ": " : ""}${p.message}`;
}

export function parseFile<K extends FileKind>(kind: K, text: string, file: string): Parsed<z.output<(typeof SCHEMAS)[K]>> {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number) => { const p = lc.linePos(offset); return { line: p.line, column: p.col }; };
  if (doc.errors.length) {
    return { ok: false, problems: doc.errors.map((e) => ({ file, ...at(e.pos[0]), path: "", message: e.message.split("\n")[0]! })) };
  }
  const data = doc.toJS() ?? {};
  const result = SCHEMAS[kind].safeParse(data);
  if (result.success) return { ok: true, value: result.data as z.output<(typeof SCHEMAS)[K]> };
  return {
    ok: false,
    problems: result.error.issues.map((i) => {
      const path = i.path.map(String);
      return { file, ...positionOf(doc, i.path as (string | number)[], at), path: path.join("."), message: i.message };
    }),
  };
}

/** The position of the deepest node on `path` that exists in the document. */
function positionOf(doc: Document, path: (string | number)[], at: (o: number) => { line: number; column: number }) {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) return at(node.range[0]);
  }
  return { line: 1, column: 1 };
}

export const parseManifest = (text: string, file: string): Parsed<Manifest> => parseFile("manifest", text, file);
export const parseRole = (text: string, file: string): Parsed<Role> => parseFile("role", text, file);
export const parseConfig = (text: string, file: string): Parsed<Config> => parseFile("config", text, file);
