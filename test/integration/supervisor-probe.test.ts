// The HTTP health check against real sockets: 2xx/3xx pass (a redirect is not followed), other
// statuses, refused connections, silence past the timeout and non-HTTP answers fail with a
// message naming the URL. The status line may arrive in pieces.
import { afterEach, expect, test } from "bun:test";
import { createServer, type Server, type Socket } from "node:net";
import { probe } from "../../agent/supervisor/probe.ts";
import { firstCheckMs } from "../../agent/supervisor/unit.ts";

const servers: Server[] = [];
afterEach(() => { for (const s of servers.splice(0)) s.close(); });

/** A TCP server on a free port whose connections `onConn` answers by hand. */
async function raw(onConn: (s: Socket, request: string) => void): Promise<number> {
  const srv = createServer((s) => { let req = ""; s.on("data", (d) => { req += d; if (req.includes("\r\n\r\n")) onConn(s, req); }); s.on("error", () => {}); });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return (srv.address() as { port: number }).port;
}
const http = (status: number, extra = "") => `HTTP/1.1 ${status} X\r\nContent-Length: 2\r\n${extra}\r\nok`;
const check = (port: number, path = "/up", timeout = 2000) => probe({ http: path, port, interval: 1000, timeout, pass: 1, fail: 1, window: 1, deadline: 5000 } as never, { cwd: "/", env: {} });

test("2xx and 3xx pass, a redirect is not followed, and the request names the path and asks to close", async () => {
  const seen: string[] = [];
  const port = await raw((s, req) => { seen.push(req); s.end(req.startsWith("GET /moved ") ? http(302, "Location: /nowhere\r\n") : http(204)); });
  expect(await check(port)).toEqual({ ok: true, error: null });
  expect(await check(port, "/moved")).toEqual({ ok: true, error: null });
  expect(seen).toHaveLength(2);                                    // the 302 was not followed
  expect(seen[0]).toStartWith("GET /up HTTP/1.1\r\n");
  expect(seen[0]).toContain(`Host: 127.0.0.1:${port}\r\n`);
  expect(seen[0]).toContain("Connection: close\r\n");
});

test("a 503 fails naming the URL and the status", async () => {
  const port = await raw((s) => s.end(http(503)));
  expect(await check(port)).toEqual({ ok: false, error: `GET http://127.0.0.1:${port}/up answered 503` });
});

test("a status line that arrives in pieces is read whole", async () => {
  const port = await raw((s) => { s.write("HTT"); setTimeout(() => s.write("P/1.1 50"), 20); setTimeout(() => s.end("0 Bad\r\n\r\n"), 40); });
  expect(await check(port)).toEqual({ ok: false, error: `GET http://127.0.0.1:${port}/up answered 500` });
});

test("a refused connection, silence past the timeout, a close without answer and a non-HTTP answer fail", async () => {
  const closed = await raw(() => {});
  servers.pop()!.close();                                            // nothing listens there now
  await Bun.sleep(20);
  const refused = await check(closed);
  expect(refused.ok).toBe(false);
  expect(refused.error).toStartWith(`GET http://127.0.0.1:${closed}/up: ECONNREFUSED`);

  const silent = await raw(() => {});
  expect(await check(silent, "/up", 200)).toEqual({ ok: false, error: `GET http://127.0.0.1:${silent}/up: no answer within 200ms` });

  const hangup = await raw((s) => s.end());
  expect(await check(hangup)).toEqual({ ok: false, error: `GET http://127.0.0.1:${hangup}/up: connection closed without an answer` });

  const ssh = await raw((s) => s.end("SSH-2.0-OpenSSH_9.6\r\n"));
  expect(await check(ssh)).toEqual({ ok: false, error: `GET http://127.0.0.1:${ssh}/up: not an HTTP answer` });
});

test("no port: fails with the fix", async () => {
  const r = await probe({ http: "/up", interval: 1000, timeout: 100, pass: 1, fail: 1, window: 1, deadline: 5000 } as never, { cwd: "/", env: {} });
  expect(r.error).toContain("has no port");
});

test("an adopted process is checked at once; a started one after 250 ms (or its interval if shorter)", () => {
  expect(firstCheckMs(1000, true)).toBe(0);
  expect(firstCheckMs(1000, false)).toBe(250);
  expect(firstCheckMs(100, false)).toBe(100);
});

test("an adopted process with an HTTP check is checked at once: firstChecks() settles with it healthy on the same pid", async () => {
  const { sandbox, supervisor, childSpec, freePort, until } = await import("../fixtures/supervisor-kit.ts");
  const sb = sandbox();
  const port = await freePort();
  const spec = childSpec(sb, "web", ["--http"], { port, health: { http: "/up", interval: 60_000, timeout: 2000, pass: 1, fail: 1, window: 1, deadline: 10_000 } as never });
  const first = supervisor(sb);
  try {
    first.adopt();
    first.ensure([spec]);
    await until(() => first.healthy(), "the first agent's web is healthy");
    const pid = first.status()[0]!.pid;
    first.detach();                                                  // the agent stops; web keeps running
    const events: { kind: string; pid?: number }[] = [];
    const next = supervisor(sb, events as never);
    expect(next.adopt().adopted.map((r) => r.pid)).toEqual([pid!]);
    next.ensure([spec]);
    expect(next.healthy()).toBe(false);                              // no check has passed yet
    await next.firstChecks();                                        // the first check runs at once after ensure()
    expect(next.healthy()).toBe(true);                               // interval 60 s: only that first check has run
    await next.firstChecks();                                        // nothing pending: settles at once
    expect(events.filter((e) => e.kind === "healthy").map((e) => e.pid)).toEqual([pid!]);
    expect(next.status()[0]).toMatchObject({ pid, state: "running", healthy: true, restarts: 0 });
    await next.stopAll();
  } finally {
    for (const r of sb.store().get().processes) try { process.kill(-r.pgid, "SIGKILL"); } catch {}   // a failed test leaves nothing running
    sb.cleanup();
  }
});

test("firstChecks() settles with a failing check too: the adopted process reads as not healthy from that check", async () => {
  const { sandbox, supervisor, childSpec, freePort, until } = await import("../fixtures/supervisor-kit.ts");
  const sb = sandbox();
  const port = await freePort();
  const sick = `${sb.dir}/sick`;
  const spec = childSpec(sb, "web", ["--http", "--unhealthy-file", sick], { port, health: { http: "/up", interval: 60_000, timeout: 2000, pass: 1, fail: 1, window: 1, deadline: 10_000 } as never });
  const first = supervisor(sb);
  try {
    first.adopt(); first.ensure([spec]);
    await until(() => first.healthy(), "the first agent's web is healthy");
    first.detach();
    await Bun.write(sick, "");
    const next = supervisor(sb);
    next.adopt(); next.ensure([spec]);
    await next.firstChecks();
    expect(next.healthy()).toBe(false);
    expect(next.status()[0]).toMatchObject({ healthy: false, pid: expect.any(Number) });
    await next.stopAll();
  } finally {
    for (const r of sb.store().get().processes) try { process.kill(-r.pgid, "SIGKILL"); } catch {}   // a failed test leaves nothing running
    sb.cleanup();
  }
});

test("a tcp check passes on a listening port and fails on a refused one, naming the port", async () => {
  const tcp = (port: number) => probe({ tcp: port, interval: 1000, timeout: 2000, pass: 1, fail: 1, window: 1, deadline: 5000 } as never, { cwd: "/", env: {} });
  const open = await raw(() => {});
  expect(await tcp(open)).toEqual({ ok: true, error: null });
  const closed = await raw(() => {});
  servers.pop()!.close();
  await Bun.sleep(20);
  const refused = await tcp(closed);
  expect(refused.ok).toBe(false);
  expect(refused.error).toStartWith(`tcp 127.0.0.1:${closed}: ECONNREFUSED`);
});
