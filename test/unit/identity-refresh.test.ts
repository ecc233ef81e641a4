// refreshedIdentity: IMDS is asked again only when the identity it last read is refreshMs old;
// an answer from the cache (IMDS failed) is never kept.
import { expect, test } from "bun:test";
import { refreshedIdentity, type ResolvedIdentity } from "../../agent/cloud/identity.ts";

const id = (role: string) => ({ instanceId: "i-0abc", region: "us-east-1", zone: "us-east-1a", role, environment: "production", at: 0 });

test("asks again only after refreshMs; a cached answer is asked again at once", async () => {
  let now = 0, calls = 0;
  const answers: ResolvedIdentity[] = [
    { identity: id("web"), source: "imds" },
    { identity: id("worker"), source: "imds" },                     // retagged
    { identity: id("worker"), source: "cache", warning: "from the cache" },
    { identity: id("db"), source: "imds" },
  ];
  const read = refreshedIdentity(async () => answers[calls++]!, () => now, 30_000);
  expect((await read(null)).identity.role).toBe("web");
  now = 29_999;
  expect((await read(null)).identity.role).toBe("web");            // not asked
  expect(calls).toBe(1);
  now = 30_000;
  expect((await read(null)).identity.role).toBe("worker");         // the retag, within refreshMs
  now = 60_000;
  expect((await read(null)).source).toBe("cache");                 // IMDS failed: not kept
  now = 60_001;
  expect((await read(null)).identity.role).toBe("db");             // asked again on the next tick
  expect(calls).toBe(4);
});
