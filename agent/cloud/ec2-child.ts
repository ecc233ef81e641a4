// The daemon's EC2: the same `Ec2` interface, with the SDK client in `agent _ec2`, a short-lived
// child of the agent's own binary (host/worker.ts), so that the EC2 client (~27 MB of RSS once
// loaded) never stays in the daemon: a converge that attaches a volume or associates an address
// starts one child, which answers every EC2 call of that tick and exits 5 s after the last one;
// an idle tick makes no EC2 call and starts none. Errors come back as the AgentErrors of
// cloud/ec2.ts (mapEc2Error), with their reason and retry. The child's side is cloud/ec2-serve.ts.
import type { Logger } from "../core/log.ts";
import { ChildWorker, runningWorkers } from "../host/worker.ts";
import type { Ec2, Ec2Options } from "./ec2.ts";

/** Every method of Ec2, the only requests `agent _ec2` answers. */
const METHODS = ["describeInstanceTags", "createTags", "describeAddresses", "associateAddress", "describeVolumes", "attachVolume", "describePeers", "instanceStates"] as const satisfies readonly (keyof Ec2)[];

/** The options travel as JSON: no credentials object (the child uses the SDK's default chain, as the daemon did). */
export type ChildEc2Options = Omit<Ec2Options, "credentials">;

/** Pids of the EC2 children running now (tests). */
export const runningEc2Children = (): number[] => runningWorkers("_ec2");

/** An Ec2 whose calls run in `agent _ec2`; `worker` is exposed for tests and the bench. */
export function createChildEc2(opts: ChildEc2Options, log: Logger): Ec2 & { worker: ChildWorker } {
  const worker = new ChildWorker({ command: "_ec2", what: "the EC2 child process", failedReason: "Ec2ChildFailed", options: opts, log });
  const out = { worker } as Ec2 & { worker: ChildWorker };
  for (const m of METHODS) (out as unknown as Record<string, unknown>)[m] = (...args: unknown[]) => worker.call(m, args);
  return out;
}
