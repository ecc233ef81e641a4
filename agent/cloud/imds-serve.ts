// `agent _imds`: the child's side of cloud/imds-child.ts (apart, so that the daemon and the child
// share no chunk of the build): each line one IMDS GET on the SDK's MetadataService.
import { createLogger } from "../core/log.ts";
import { serveRequests } from "../host/serve.ts";
import type { ImdsOptions } from "./imds.ts";
import { onSdkLoad } from "./sdk.ts";

/** `agent _imds` (hidden): the first line is the ImdsOptions, every later line one `get`. */
export function serveImds(): Promise<number> {
  onSdkLoad((name, rssAddedMB) => createLogger("agent").child("cloud").info("loaded an AWS SDK client", { package: name, rssAddedMB, in: "agent _imds" }));
  return serveRequests(async (options: ImdsOptions) => (await import("./imds.ts")).createImds(options),
    async (imds, method, args) => {
      if (method !== "get" || typeof args[0] !== "string") throw new Error(`agent _imds: unknown request ${method}`);
      return await (await imds).get(args[0]);
    });
}
