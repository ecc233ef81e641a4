// The front's socket data path, its listener: `Bun.listen` (plain or TLS) on a public port, the
// client connections it holds (connection.ts runs each one's requests), the sweep of slow heads
// and idle connections, and a stop that lets kept clients finish. Routing, counting and the access
// log stay in server.ts (FrontCore): each request on a kept client connection asks it afresh.
import type { Socket, TCPSocketListener } from "bun";
import { endSoon, flush, pool, send, type Out } from "./upstream.ts";
import type { Route, Upstream } from "./routes.ts";
import { plainResponse } from "./http1.ts";
import { Conn, HEAD_TIMEOUT_MS, STOP_GRACE_MS } from "./connection.ts";

/** What the data path needs from the front: routing, counting, metrics. */
export interface FrontCore {
  route(port: number): Route | undefined;
  pickNow(port: number, exclude: number | null): Upstream | null;
  pick(port: number, exclude: number | null): Promise<Upstream | null>;
  /** A request went to `up` (in flight until `release`). */
  engage(up: Upstream): void;
  release(upstreamPort: number): void;
  hit(port: number): void;
  answered(a: { port: number; method: string; path: string; status: number; upstream: string | null; started: number; bytes: number | null }): void;
  reject(reason: "tooLarge" | "holdTimeout" | "upstreamFailed" | "clientAborted"): void;
  upstreamSeconds(s: number): void;
  /** The front's own time for one answered request (agent_front_own_seconds). */
  ownSeconds(s: number): void;
  warn(msg: string, fields: Record<string, unknown>): void;
  /** An open WebSocket relay counts on its instance and is closed with 1001 when its drain ends. */
  addSocket(upstreamPort: number, ws: { close(code: number, reason: string): void }): void;
  removeSocket(upstreamPort: number, ws: { close(code: number, reason: string): void }): void;
  readonly retiring: boolean;
}

type ClientSocket = Socket<Conn>;

/** A public port's listener on the socket data path; the same surface server.ts uses of a Bun.serve. */
export class SocketListener {
  readonly conns = new Set<Conn>();
  stopped = false;
  private readonly listener: TCPSocketListener<Conn>;
  private timer: ReturnType<typeof setInterval>;

  constructor(readonly core: FrontCore, readonly port: number, hostname: string, readonly tls: { cert: string; key: string } | undefined, private readonly idleTimeoutS: number) {
    const self = this;
    this.listener = Bun.listen<Conn>({
      hostname, port, reusePort: true, tls,
      socket: {
        binaryType: "buffer",
        open(s: ClientSocket) {
          const c = new Conn(self);
          c.sock = s;
          c.peer = s.remoteAddress;
          s.data = c;
          s.setNoDelay(true);
          self.conns.add(c);
        },
        data(s: ClientSocket, buf: Buffer) { s.data.data(buf); },
        drain(s: ClientSocket) { flush(s as unknown as Socket<Out>); },
        close(s: ClientSocket) { s.data.closed(); },
        error() { /* close follows */ },
      },
    } as unknown as Bun.TCPSocketListenOptions<Conn>) as TCPSocketListener<Conn>;
    this.timer = setInterval(() => this.sweep(), 1000);
  }

  /** Requests in progress; once stopped, also connections that answered one within STOP_GRACE_MS (a kept client's next request is coming). */
  get pendingRequests(): number {
    const now = Date.now();
    let n = 0;
    for (const c of this.conns) if ((c.ex && !c.ws) || (this.stopped && !c.ex && now - c.idleSince < STOP_GRACE_MS)) n++;
    return n;
  }
  get pendingWebSockets(): number { let n = 0; for (const c of this.conns) if (c.ws) n++; return n; }

  /** Slow request heads get 408; connections idle past the idle timeout are closed; old pooled connections too. */
  private sweep(): void {
    const now = Date.now();
    pool.sweep(now);
    for (const c of this.conns) {
      if (c.ex) continue;
      if (c.headSince > 0 && now - c.headSince > HEAD_TIMEOUT_MS) {
        c.buf = null;
        c.ending = true;
        send(c.sock, Buffer.from(plainResponse(408, "Request Timeout", "the request head took too long\n", {}, true)), null);
        endSoon(c.sock);
      } else if (c.headSince === 0 && now - c.idleSince > this.idleTimeoutS * 1000) c.sock.end();
    }
    if (this.stopped && this.conns.size === 0) clearInterval(this.timer);
  }

  /**
   * Stops accepting; idle connections close now, the others after their current answer (with
   * `Connection: close`). `force` cuts them all, also after a stop without it.
   */
  stop(force = false): void {
    if (this.stopped) {
      if (force) for (const c of this.conns) c.sock.terminate();
      return;
    }
    this.stopped = true;
    this.listener.stop(false);
    clearInterval(this.timer);
    if (force) { for (const c of this.conns) c.sock.terminate(); return; }
    // Closing an idle kept connection races with the request its client may be sending: those
    // that answered just now get STOP_GRACE_MS for it (answered with Connection: close).
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const c of this.conns) if (!c.ex && !c.buf && now - c.idleSince >= STOP_GRACE_MS) c.sock.end();
      this.sweep();
    }, 50);
  }
}
