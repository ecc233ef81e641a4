// The front's wire format for tls and accessLog, and the per-route request rate.
import { describe, expect, test } from "bun:test";
import { parseTable } from "../../agent/front/control.ts";
import { FrontMetrics } from "../../agent/front/metrics.ts";

const route = (extra: Record<string, unknown>) => ({ routes: [{ port: 8443, upstreams: [{ id: "a", port: 41001 }], ...extra }] });

describe("front control: tls and accessLog", () => {
  test("defaults: no TLS, no access log", () => {
    const r = parseTable(route({}));
    expect(r.ok && r.routes[0]!.tls).toBe(null);
    expect(r.ok && r.routes[0]!.accessLog).toBe(false);
    expect(r.ok && r.accessLog).toBe(false);
  });

  test("a route's tls names both PEM files; the table-wide accessLog is kept", () => {
    const r = parseTable({ ...route({ tls: { cert: "/c.pem", key: "/k.pem" }, accessLog: true }), accessLog: true });
    expect(r).toMatchObject({ ok: true, accessLog: true, routes: [{ tls: { cert: "/c.pem", key: "/k.pem" }, accessLog: true }] });
  });

  test.each([
    [route({ tls: { cert: "/c.pem" } }), "routes[0].tls"],
    [route({ tls: "/c.pem" }), "routes[0].tls"],
    [route({ tls: { cert: "", key: "/k.pem" } }), "routes[0].tls"],
    [route({ accessLog: "yes" }), "routes[0].accessLog"],
    [{ ...route({}), accessLog: 1 }, "accessLog"],
  ])("refused: %j names %s", (raw, field) => {
    const r = parseTable(raw);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.startsWith(field)).toBe(true);
  });
});

describe("front metrics: the rate", () => {
  test("requests/s over the last 10 s, per port; older seconds fall out", () => {
    const m = new FrontMetrics();
    for (let i = 0; i < 50; i++) m.hit(80, 1_000_000 + i * 100);   // 50 requests over 5 s
    expect(m.rate(80, 1_004_999)).toBe(5);
    expect(m.rate(443, 1_004_999)).toBe(0);
    expect(m.rate(80, 1_013_000)).toBe(1);   // 8 s later only the last second (10 requests) is in the window
    expect(m.rate(80, 1_020_000)).toBe(0);
  });
});
