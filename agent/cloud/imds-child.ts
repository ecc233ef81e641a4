// The daemon's IMDS: the same `Imds` interface, with the SDK's MetadataService in `agent _imds`,
// a short-lived child of the agent's own binary (host/worker.ts), so that the IMDS client (about
// 24 MB of RSS once loaded) never stays in the daemon. The identity stage's reads of a tick go to
// one child, which exits idleMs (the daemon: 1 s) after the last one. Errors come back as cloud/imds.ts's AgentErrors
// ("ImdsUnavailable"); a child that dies mid-request is one too. The child's side is cloud/imds-serve.ts.
import type { Logger } from "../core/log.ts";
import { ChildWorker, runningWorkers } from "../host/worker.ts";
import type { Imds, ImdsOptions } from "./imds.ts";

/** Pids of the IMDS children running now (tests). */
export const runningImdsChildren = (): number[] => runningWorkers("_imds");

/** An Imds whose requests run in `agent _imds`; `worker` is exposed for tests and the bench. */
export function createChildImds(opts: ImdsOptions & { idleMs?: number }, log: Logger): Imds & { worker: ChildWorker } {
  const { idleMs, ...options } = opts;
  const worker = new ChildWorker({ command: "_imds", what: "the IMDS child process", failedReason: "ImdsUnavailable", options, log, ...(idleMs ? { idleMs } : {}) });
  return { worker, get: (path) => worker.call<string | null>("get", [path]) };
}
