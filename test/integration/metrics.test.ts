// Prometheus metrics: the registry's exposition format, scraped over HTTP from the real server.
import { afterEach, describe, expect, test } from "bun:test";
import { createAgentMetrics } from "../../agent/metrics/agent.ts";
import { Registry, escapeLabelValue } from "../../agent/metrics/registry.ts";
import { parseListenAddress, startMetricsServer, type MetricsServer } from "../../agent/metrics/server.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { AgentError } from "../../agent/core/errors.ts";

const servers: MetricsServer[] = [];
afterEach(async () => { for (const s of servers.splice(0)) await s.stop(); });

function serve(r: Registry): MetricsServer {
  const s = startMetricsServer("127.0.0.1:0", r, memoryLogger())!;
  servers.push(s);
  return s;
}

interface Sample { name: string; labels: Record<string, string>; value: number }

/**
 * A strict reader of the text format: every line is a HELP, a TYPE, or a sample of a metric
 * declared by TYPE before it; label values are unescaped. Throws on anything else.
 */
function parseExposition(text: string): { samples: Sample[]; types: Record<string, string>; help: Record<string, string> } {
  const types: Record<string, string> = {}, help: Record<string, string> = {};
  const samples: Sample[] = [];
  expect(text.endsWith("\n")).toBe(true);
  for (const line of text.slice(0, -1).split("\n")) {
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line))) { help[m[1]!] = m[2]!; continue; }
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      if (!help[m[1]!]) throw new Error(`TYPE before HELP: ${line}`);
      types[m[1]!] = m[2]!; continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a valid exposition line: ${JSON.stringify(line)}`);
    const name = m[1]!;
    const base = name.replace(/_(bucket|sum|count)$/, "");
    if (!types[name] && types[base] !== "histogram") throw new Error(`sample before its TYPE: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    const v = m[3]!;
    const value = v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v);
    if (Number.isNaN(value) && v !== "NaN") throw new Error(`bad value: ${line}`);
    samples.push({ name, labels, value });
  }
  return { samples, types, help };
}

const find = (s: Sample[], name: string, labels: Record<string, string> = {}) =>
  s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));

describe("metrics", () => {
  test("the agent's metrics, scraped over HTTP, in valid exposition format", async () => {
    const m = createAgentMetrics({ version: "1.2.3" });
    m.recordTick("ok", 41, Date.parse("2026-11-26T12:00:00Z"));
    m.recordTick("ok", 2500, Date.parse("2026-11-26T12:00:30Z"));
    m.recordTick("error", 120, Date.parse("2026-11-26T12:01:00Z"));
    m.deploys.inc({ result: "success" });
    m.deploys.inc({ result: "rolled_back" });
    m.processRestarts.inc({ process: "web" }, 3);
    m.setCurrentCommit("aaaa", "web", "staging");
    m.setCurrentCommit("9fceb02d0ae5", "web", "production");
    const s = serve(m.registry);
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    const res = await fetch(s.url);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const { samples, types } = parseExposition(await res.text());

    expect(types).toMatchObject({
      agent_up: "gauge", agent_ticks_total: "counter", agent_tick_duration_seconds: "histogram",
      agent_deploys_total: "counter", agent_current_commit_info: "gauge", agent_process_restarts_total: "counter",
      agent_last_successful_sync_timestamp_seconds: "gauge",
    });
    expect(find(samples, "agent_up")[0]!.value).toBe(1);
    expect(find(samples, "agent_ticks_total", { result: "ok" })[0]!.value).toBe(2);
    expect(find(samples, "agent_ticks_total", { result: "error" })[0]!.value).toBe(1);
    expect(find(samples, "agent_deploys_total", { result: "failed" })[0]!.value).toBe(0);
    expect(find(samples, "agent_deploys_total", { result: "rolled_back" })[0]!.value).toBe(1);
    expect(find(samples, "agent_process_restarts_total", { process: "web" })[0]!.value).toBe(3);
    expect(find(samples, "agent_current_commit_info")).toEqual([
      { name: "agent_current_commit_info", labels: { commit: "9fceb02d0ae5", role: "web", environment: "production" }, value: 1 },
    ]);
    // The last *successful* tick, not the failed one after it.
    expect(find(samples, "agent_last_successful_sync_timestamp_seconds")[0]!.value).toBe(Date.parse("2026-11-26T12:00:30Z") / 1000);
    expect(find(samples, "agent_build_info")[0]!.labels).toEqual({ version: "1.2.3" });

    // Histogram: cumulative buckets, +Inf equals count, sum in seconds.
    const buckets = find(samples, "agent_tick_duration_seconds_bucket");
    expect(buckets.at(-1)!.labels.le).toBe("+Inf");
    expect(buckets.at(-1)!.value).toBe(3);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(find(samples, "agent_tick_duration_seconds_bucket", { le: "0.05" })[0]!.value).toBe(1);
    expect(find(samples, "agent_tick_duration_seconds_bucket", { le: "1" })[0]!.value).toBe(2);
    expect(find(samples, "agent_tick_duration_seconds_count")[0]!.value).toBe(3);
    expect(find(samples, "agent_tick_duration_seconds_sum")[0]!.value).toBeCloseTo(2.661, 6);
  });

  test("label values and help text are escaped", async () => {
    const r = new Registry();
    r.gauge("odd_info", "help with a \\ backslash\nand a newline", ["v"]).set(1, { v: 'quote " back \\ nl \n end' });
    const s = serve(r);
    const text = await (await fetch(s.url)).text();
    expect(text).toContain('odd_info{v="quote \\" back \\\\ nl \\n end"} 1');
    expect(text).toContain("# HELP odd_info help with a \\\\ backslash\\nand a newline");
    const { samples } = parseExposition(text);
    expect(samples[0]!.labels.v).toBe('quote " back \\ nl \n end');
    expect(escapeLabelValue("a\\b")).toBe("a\\\\b");
  });

  test("wrong labels, negative counter increments and bad names are refused", () => {
    const r = new Registry();
    const c = r.counter("x_total", "x", ["result"]);
    expect(() => c.inc({})).toThrow(/takes labels \[result\]/);
    expect(() => c.inc({ result: "ok", extra: "1" })).toThrow();
    expect(() => c.inc({ result: "ok" }, -1)).toThrow(/only goes up/);
    expect(() => r.gauge("bad-name", "x")).toThrow(/not a valid Prometheus name/);
    expect(() => r.counter("x_total", "again")).toThrow(/registered twice/);
  });

  test("only /metrics is served; null turns metrics off", async () => {
    const s = serve(new Registry());
    expect((await fetch(s.url.replace("/metrics", "/"))).status).toBe(404);
    expect((await fetch(s.url, { method: "POST" })).status).toBe(405);
    expect(startMetricsServer(null, new Registry())).toBeNull();
  });

  test("listen addresses", () => {
    expect(parseListenAddress("127.0.0.1:9464")).toEqual({ host: "127.0.0.1", port: 9464 });
    expect(parseListenAddress("[::1]:9464")).toEqual({ host: "::1", port: 9464 });
    for (const bad of ["9464", "127.0.0.1", "127.0.0.1:99999", "http://127.0.0.1:9464"]) {
      expect(() => parseListenAddress(bad)).toThrow(AgentError);
    }
  });
});
