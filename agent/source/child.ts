// `agent _source`: the daemon's git operations in a child process, so that the daemon never loads
// isomorphic-git (its pages and a fetch's pack buffers would stay in the daemon's RSS for its whole
// life). One child serves a session (a tick, or a deploy): it reads one request a line on stdin,
// {id, options, method, args} as JSON, runs them one at a time against one `Source`, and writes
// one answer a line on stdout, {id, ok: true, value} or {id, ok: false, error: {reason, message,
// retry}}; it exits when stdin closes (the daemon closed the session, or died). Logs go to stderr.
import { createLogger } from "../core/log.ts";
import { serveRequests } from "../host/serve.ts";
import { layout } from "../state/layout.ts";
import { Source, type SourceOptions } from "./source.ts";

export type ChildOptions = Omit<SourceOptions, "log">;

/** The first line is the options ({options}); every later line is a request (host/worker.ts). */
export function serveSource(): Promise<number> {
  return serveRequests((options: ChildOptions) => new Source({ ...options, log: createLogger("agent").child("source") }),
    async (source, method, args) => encode(await call(source, method, args)));
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
