// The daemon's Prometheus metrics, scraped from a running `agent run`: ticks, deploys by result,
// the current commit, and the last successful sync.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { AGENT, makeKit, role, type Kit } from "./kit.ts";

let k: Kit;
let daemon: Subprocess | null = null;
let url = "";

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** One sample's value: `name{labels} value`, labels matched as written. */
function sample(text: string, series: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line ? Number(line.slice(series.length + 1)) : null;
}

async function scrape(): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

async function until(what: string, ok: (text: string) => boolean, ms = 30_000): Promise<string> {
  const end = Date.now() + ms;
  let text = "";
  while (Date.now() < end) {
    try { text = await scrape(); if (ok(text)) return text; } catch {}
    await Bun.sleep(200);
  }
  throw new Error(`timed out waiting for ${what}; last scrape:\n${text.slice(0, 1500)}`);
}

beforeAll(async () => {
  const port = freePort();
  url = `http://127.0.0.1:${port}`;
  k = await makeKit("metrics", role(), { metrics: `127.0.0.1:${port}` });
});
afterAll(async () => {
  daemon?.kill("SIGTERM");
  await daemon?.exited;
  await k?.stop();
});

test("a deploy and a rollback show up in the daemon's metrics", async () => {
  const v1 = await k.release({ VERSION: "v1\n" }, "v1");
  daemon = Bun.spawn([AGENT, "run"], { env: { ...process.env, AGENT_CONFIG: k.config }, stdout: "ignore", stderr: "ignore" });
  let text = await until("v1 current", (t) => sample(t, `agent_current_commit_info{commit="${v1}",role="web",environment="staging"}`) === 1);
  expect(sample(text, "agent_up")).toBe(1);
  expect(sample(text, 'agent_deploys_total{result="success"}')).toBe(1);
  expect(sample(text, 'agent_ticks_total{result="ok"}')).toBeGreaterThan(0);
  expect(sample(text, "agent_last_successful_sync_timestamp_seconds")).toBeGreaterThan(Date.now() / 1000 - 60);
  expect(text).toContain("# TYPE agent_tick_duration_seconds histogram");

  await k.release({ VERSION: "v2\n", sick: "yes\n" }, "v2, unhealthy");
  await k.agent(["sync"]);
  text = await until("the rollback counted", (t) => sample(t, 'agent_deploys_total{result="rolled_back"}') === 1);
  expect(sample(text, `agent_current_commit_info{commit="${v1}",role="web",environment="staging"}`)).toBe(1);
  expect(sample(text, 'agent_ticks_total{result="error"}')).toBeGreaterThan(0);
}, 60_000);
