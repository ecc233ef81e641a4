// One GET over a plain socket, read up to the status line, then closed: what the supervisor's
// HTTP health check and the front's readiness probe both need. No fetch() (its Request, Response,
// Headers, AbortSignal and pool cost CPU on a node with many checks, and Bun's HTTP client starts a
// thread of its own in the idle front); one timer for the timeout. Never throws.
import { errorMessage } from "../core/errors.ts";

/** The status code the server answered, or why there is none (a sentence naming no URL: the caller names it). */
export type StatusAnswer = { status: number } | { error: string };

/** GET `path` on 127.0.0.1:`port` with `Connection: close`; the status line's code within `timeoutMs` (no redirect followed). */
export function httpStatus(port: number, path: string, timeoutMs: number): Promise<StatusAnswer> {
  return new Promise((resolve) => {
    let settled = false, head = "", sock: { end(): void } | null = null;
    const done = (r: StatusAnswer) => {
      if (settled) return;
      settled = true; clearTimeout(timer); sock?.end(); resolve(r);
    };
    const timer = setTimeout(() => done({ error: `no answer within ${timeoutMs}ms` }), timeoutMs);
    Bun.connect({ hostname: "127.0.0.1", port, socket: {
      open(s) {
        sock = s;
        if (settled) return void s.end();
        s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: agent-health\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
      },
      data(_s, chunk) {
        head += chunk.toString("latin1");
        if (head.indexOf("\r\n") < 0 && head.length < 1024) return;
        const status = Number(/^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head)?.[1] ?? NaN);
        done(Number.isNaN(status) ? { error: "not an HTTP answer" } : { status });
      },
      close() { done({ error: "connection closed without an answer" }); },
      error(_s, e) { done({ error: socketError(e) }); },
      connectError(_s, e) { done({ error: socketError(e) }); },
    } }).catch((e) => done({ error: socketError(e) }));
  });
}

/** "ECONNREFUSED: Failed to connect": Bun's socket messages alone do not say why. */
export function socketError(e: unknown): string {
  const code = (e as { code?: unknown }).code, message = errorMessage(e);
  return typeof code === "string" && !message.includes(code) ? `${code}: ${message}` : message;
}
