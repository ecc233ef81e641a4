// `agent _source`: one git operation of the Source in a short-lived process, so that the daemon
// never loads isomorphic-git (its pages and a fetch's pack buffers would stay in the daemon's RSS
// for its whole life). Reads {options, method, args} as JSON on stdin, writes {ok, value} or
// {ok: false, error: {reason, message, retry}} as JSON on stdout; logs go to stderr (the daemon's).
import { AgentError, errorMessage } from "../core/errors.ts";
import { createLogger } from "../core/log.ts";
import { layout } from "../state/layout.ts";
import { Source, type SourceOptions } from "./source.ts";

export type ChildOptions = Omit<SourceOptions, "log">;
export interface ChildRequest { options: ChildOptions; method: string; args: unknown[] }
export type ChildError = { reason: string | null; message: string; retry: AgentError["retry"] | null };
export type ChildAnswer = { ok: true; value: unknown } | { ok: false; error: ChildError };

export async function serveSource(): Promise<number> {
  const req = JSON.parse(await Bun.stdin.text()) as ChildRequest;
  const source = new Source({ ...req.options, log: createLogger("agent").child("source") });
  let answer: ChildAnswer;
  try {
    answer = { ok: true, value: encode(await call(source, req.method, req.args)) };
  } catch (e) {
    answer = { ok: false, error: e instanceof AgentError
      ? { reason: e.reason, message: e.message, retry: e.retry }
      : { reason: null, message: errorMessage(e), retry: null } };
  }
  process.stdout.write(JSON.stringify(answer));
  return 0;
}

function call(s: Source, method: string, a: unknown[]): Promise<unknown> {
  switch (method) {
    case "poll": return s.poll(a[0] as string | null);
    case "readManifest": return s.readManifest(a[0] as string, a[1] as string);
    case "ensureCommit": return s.ensureCommit(a[0] as string);
    case "readRole": return s.readRole(a[0] as string, a[1] as string);
    case "commitObject": return s.commitObject(a[0] as string);
    case "readFile": return s.readFile(a[0] as string, a[1] as string);
    case "descendsFrom": return s.descendsFrom(a[0] as string, a[1] as string);
    case "maintain": return s.maintain(a[0] as string, a[1] as string[]);
    case "checkout": return s.checkout(a[0] as string, layout(a[1] as string), a[2] as { subject?: string | null; now?: number });
    default: throw new Error(`agent _source: unknown method ${method}`);
  }
}

/** Bytes (a raw commit object) travel as base64. */
const encode = (v: unknown) => v instanceof Uint8Array ? { base64: Buffer.from(v).toString("base64") } : v;
