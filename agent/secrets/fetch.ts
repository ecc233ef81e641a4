// Fetch a set of references in as few calls as the APIs allow: GetParameters in batches of 10,
// GetParametersByPath page by page, one GetSecretValue per secret; back off (full jitter) on a
// ThrottlingException. All or nothing: one missing or denied reference fails the whole fetch, so a
// process never starts with some of its secrets.
import { AgentError } from "../core/errors.ts";
import type { SecretsClient } from "../cloud/secrets.ts";
import { Throttled } from "../cloud/secrets.ts";
import { batches, throttleDelay, type FetchKey, type Resolution } from "./plan.ts";

export interface FetchOptions {
  sleep: (ms: number) => Promise<void>;
  random: () => number;
  /** Tries per call when throttled (default 6). */
  attempts?: number;
  baseDelayMs?: number;
}

export interface FetchStats { calls: number; throttled: number }

/** Resolve every key; values stay in memory. Throws AgentError (SecretNotFound, SecretAccessDenied, SecretsThrottled, …). */
export async function fetchAll(client: SecretsClient, keys: readonly FetchKey[], o: FetchOptions): Promise<{ resolution: Resolution; stats: FetchStats }> {
  const stats: FetchStats = { calls: 0, throttled: 0 };
  const attempts = o.attempts ?? 6;
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    for (let i = 0; ; i++) {
      stats.calls++;
      try {
        return await fn();
      } catch (e) {
        if (!(e instanceof Throttled) || i + 1 >= attempts) throw e;
        stats.throttled++;
        await o.sleep(throttleDelay(i, o.random(), o.baseDelayMs));
      }
    }
  };
  const resolution: Resolution = {};
  const names = keys.filter((k) => k.startsWith("ssm:")).map((k) => k.slice(4));
  for (const batch of batches(names)) {
    const { found, missing } = await call(() => client.getParameters(batch));
    if (missing.length) {
      throw new AgentError("SecretNotFound", `SSM parameter${missing.length > 1 ? "s" : ""} ${missing.join(", ")} not found (ssm:GetParameters): create ${missing.length > 1 ? "them" : "it"} in this account and region, or fix the reference`, { kind: "after", ms: 60_000 });
    }
    for (const p of found) resolution[`ssm:${p.name}`] = { kind: "value", version: p.version, value: p.value };
  }
  for (const key of keys.filter((k) => k.startsWith("path:"))) {
    const path = key.slice(5);
    const params: { name: string; version: string; value: string }[] = [];
    let next: string | undefined;
    do {
      const page = await call(() => client.getParametersByPath(path, next));
      params.push(...page.found);
      next = page.nextToken;
    } while (next);
    resolution[key] = { kind: "path", params: params.sort((a, b) => a.name.localeCompare(b.name)) };
  }
  for (const key of keys.filter((k) => k.startsWith("secret:"))) {
    const got = await call(() => client.getSecretValue(key.slice(7)));
    resolution[key] = { kind: "value", version: got.version, value: got.value };
  }
  return { resolution, stats };
}
