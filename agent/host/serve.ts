// The child's side of host/worker.ts: `agent _source` and `agent _ec2` read their options and then
// one request a line on stdin, and answer one a line on stdout. Kept apart from worker.ts: the daemon
// imports that one, the children this one.
import { AgentError, errorMessage } from "../core/errors.ts";
import type { WorkerAnswer } from "./worker.ts";

export interface WorkerRequest { id: number; method: string; args: unknown[] }

/**
 * The child's side: the first line is {options} (given to `init`); every later line is a request,
 * run one at a time by `call`, answered a line on stdout. Returns when stdin closes.
 */
export async function serveRequests<O, S>(init: (options: O) => S, call: (server: S, method: string, args: unknown[]) => Promise<unknown>): Promise<number> {
  let server: S | null = null;
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of Bun.stdin.stream()) {
    buf += dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      if (server === null) { server = init((JSON.parse(line) as { options: O }).options); continue; }
      const req = JSON.parse(line) as WorkerRequest;
      process.stdout.write(JSON.stringify(await answer(() => call(server!, req.method, req.args), req.id)) + "\n");
    }
  }
  // stdin closed: the daemon wants nothing more. Exit now, not when the SDK's kept-alive sockets
  // and timers let go (the IMDS client held a child 6 s past its last answer).
  setTimeout(() => process.exit(0), 50);
  return 0;
}

async function answer(run: () => Promise<unknown>, id: number): Promise<WorkerAnswer> {
  try {
    return { id, ok: true, value: await run() };
  } catch (e) {
    return { id, ok: false, error: e instanceof AgentError
      ? { reason: e.reason, message: e.message, retry: e.retry }
      : { reason: null, message: errorMessage(e), retry: null } };
  }
}
