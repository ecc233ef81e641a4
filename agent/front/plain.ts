// The front's two small HTTP/1.1 ends on plain sockets, so that the idle front starts neither
// Bun's HTTP client (a thread of its own) nor Bun.serve: the readiness probe (one GET on a new
// connection, read to its status line) and the control socket's server (a unix socket, a
// request at a time per connection, bodies of a known length). Together about 3 MB of the idle
// RSS (docs/benchmarks.md#front).
import type { Socket, UnixSocketListener } from "bun";
import { headEnd, MAX_HEAD, parseRequestHead } from "./http1.ts";
import { httpStatus } from "../host/http-status.ts";

/** GET `path` on 127.0.0.1:`port`: true when the status line says 2xx within `timeoutMs` (no redirect is followed). */
export async function probe(port: number, path: string, timeoutMs: number): Promise<boolean> {
  const r = await httpStatus(port, path, timeoutMs);
  return "status" in r && r.status >= 200 && r.status < 300;
}

/** An answer of the control socket. */
export interface ControlAnswer { status: number; body: string; type?: string }
export type ControlHandler = (method: string, path: string, body: string) => Promise<ControlAnswer>;

const REASONS: Record<number, string> = { 200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 409: "Conflict", 411: "Length Required", 413: "Content Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error" };
/** The largest control request body (a table of many routes is a few KB). */
const MAX_BODY = 16 * 1024 * 1024;

interface ControlConn { buf: Buffer | null; busy: boolean; closed: boolean; continued: boolean }

/** Serves `handler` on the unix socket `path` (HTTP/1.1, kept-alive connections). */
export function serveControl(path: string, handler: ControlHandler): UnixSocketListener<ControlConn> {
  const answer = (s: Socket<ControlConn>, a: ControlAnswer, close: boolean) => {
    const body = Buffer.from(a.body);
    s.write(`HTTP/1.1 ${a.status} ${REASONS[a.status] ?? "Status"}\r\nContent-Type: ${a.type ?? "application/json;charset=utf-8"}\r\nContent-Length: ${body.length}\r\n${close ? "Connection: close\r\n" : ""}\r\n`);
    s.write(body);
    if (close) s.end();
  };
  const next = (s: Socket<ControlConn>): void => {
    const c = s.data;
    if (c.busy || c.closed || !c.buf) return;
    const end = headEnd(c.buf);
    if (end < 0) { if (c.buf.length > MAX_HEAD) answer(s, { status: 431, body: JSON.stringify({ error: "request head too large" }) }, true); return; }
    const parsed = parseRequestHead(c.buf.toString("latin1", 0, end));
    if (!parsed.ok) { answer(s, { status: 400, body: JSON.stringify({ error: parsed.error }) }, true); c.buf = null; return; }
    const h = parsed.head;
    if (h.body.kind === "chunked") { answer(s, { status: 411, body: JSON.stringify({ error: "a control request body needs a Content-Length" }) }, true); c.buf = null; return; }
    const length = h.body.kind === "length" ? h.body.length : 0;
    if (length > MAX_BODY) { answer(s, { status: 413, body: JSON.stringify({ error: "request body too large" }) }, true); c.buf = null; return; }
    if (c.buf.length < end + length) {
      if (h.expectContinue && !c.continued) { c.continued = true; s.write("HTTP/1.1 100 Continue\r\n\r\n"); }
      return;
    }
    c.continued = false;
    const body = c.buf.toString("utf8", end, end + length);
    c.buf = c.buf.length > end + length ? c.buf.subarray(end + length) : null;
    c.busy = true;
    const close = !h.keepAlive || h.version !== "HTTP/1.1";
    const q = h.target.indexOf("?");
    handler(h.method, q < 0 ? h.target : h.target.slice(0, q), body)
      .catch((e: unknown) => ({ status: 500, body: JSON.stringify({ error: String(e) }) }))
      .then((a) => {
        c.busy = false;
        if (c.closed) return;
        answer(s, a, close);
        if (close) c.buf = null; else next(s);
      });
  };
  return Bun.listen<ControlConn>({
    unix: path,
    socket: {
      binaryType: "buffer",
      open(s) { s.data = { buf: null, busy: false, closed: false, continued: false }; },
      data(s, d: Buffer) { s.data.buf = s.data.buf ? Buffer.concat([s.data.buf, d]) : d; next(s); },
      close(s) { s.data.closed = true; },
      error() { /* close follows */ },
    },
  });
}
