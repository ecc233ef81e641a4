// `agent _ec2`: the child's side of cloud/ec2-child.ts (apart, so that the daemon and the child
// share no chunk of the build): every Ec2 call on the real SDK client, one request a line.
import { createLogger } from "../core/log.ts";
import { serveRequests } from "../host/serve.ts";
import type { ChildEc2Options } from "./ec2-child.ts";
import type { Ec2 } from "./ec2.ts";
import { onSdkLoad } from "./sdk.ts";

/** `agent _ec2` (hidden): the first line is the Ec2Options, every later line one Ec2 call. */
export function serveEc2(): Promise<number> {
  // The daemon's log (this child's stderr is the daemon's) says where the client was loaded.
  onSdkLoad((name, rssAddedMB) => createLogger("agent").child("cloud").info("loaded an AWS SDK client", { package: name, rssAddedMB, in: "agent _ec2" }));
  return serveRequests(async (options: ChildEc2Options) => (await import("./ec2.ts")).createEc2(options),
    async (ec2, method, args) => {
      const fn = (await ec2)[method as keyof Ec2] as ((...a: unknown[]) => Promise<unknown>) | undefined;
      if (!Object.hasOwn(await ec2, method) || typeof fn !== "function") throw new Error(`agent _ec2: unknown method ${method}`);
      return await fn(...args);
    });
}
