// What a node costs that needs no AWS: the compiled binary with a static identity and no volume
// or address converges without loading an AWS SDK client (each load is logged once, with the RSS
// it added; test/e2e/aws.test.ts sees the log line on an EC2 node).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { makeKit, stopApps, type Kit } from "./kit.ts";

let k: Kit;
beforeAll(async () => { k = await makeKit("cost"); });
afterAll(async () => { if (k) { await stopApps(k.state); await k.stop(); } });

test("a static-identity node without volumes or addresses never loads an AWS SDK client", async () => {
  await k.release({ VERSION: "v1\n" }, "v1");
  const r = await k.agent(["once"], { timeoutMs: 60_000 });
  expect(r.code).toBe(0);
  expect(k.status().phase).toBe("converged");
  expect(r.stderr).not.toContain("loaded an AWS SDK client");
});
