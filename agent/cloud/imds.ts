// IMDSv2 through the AWS SDK's MetadataService: token first, never IMDSv1, always a timeout.
// Answers text, or null for a 404 (a tag or a path that is not there); everything else that
// fails is AgentError "ImdsUnavailable" (transient).
import type { MetadataService } from "@aws-sdk/ec2-metadata-service";
import { AgentError, errorMessage } from "../core/errors.ts";
import { loadImdsSdk } from "./sdk.ts";

export interface Imds {
  /** GET a metadata path such as "latest/meta-data/instance-id" (no leading slash). null on 404. */
  get(path: string): Promise<string | null>;
}

export interface ImdsOptions {
  endpoint: string;
  timeoutMs: number;
  /** Retries per request after the first try (default 1); 404s are never retried. */
  retries?: number;
  /** Seconds between retries (default 0.2). */
  backoffSeconds?: number;
}

/**
 * An IMDSv2 client. Read-only; each request fetches its own token (the SDK does not cache them).
 * The SDK is loaded at the first request (cloud/sdk.ts).
 */
export function createImds(opts: ImdsOptions): Imds {
  const make = async (): Promise<MetadataService> => new (await loadImdsSdk()).MetadataService({
    endpoint: opts.endpoint,
    ec2MetadataV1Disabled: true,
    // The SDK's default is no timeout at all: an IMDS that never answers would hang the tick.
    httpOptions: { timeout: opts.timeoutMs },
    retries: opts.retries ?? 1,
    backoff: opts.backoffSeconds ?? 0.2,
  });
  let md: Promise<MetadataService> | null = null;
  return {
    async get(path) {
      const clean = path.replace(/^\/+/, ""); // the SDK joins endpoint path + path: "/x" would become "//x"
      try {
        return await (await (md ??= make())).request(clean, {});
      } catch (e) {
        if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return null;
        // A refused token PUT switches the SDK's instance to "no token" for good, which with
        // IMDSv1 disabled fails every later request: start over with a fresh one.
        md = null;
        throw new AgentError("ImdsUnavailable",
          `instance metadata at ${opts.endpoint} did not answer ${clean}: ${errorMessage(e)}; ` +
          `check that IMDS is enabled with HttpTokens=required and a hop limit that reaches the agent`, { kind: "transient" }, { cause: e });
      }
    },
  };
}
