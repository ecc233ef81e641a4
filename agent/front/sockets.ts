// The front's socket data path: Bun.listen (plain or TLS) on a public port, pooled Bun.connect
// connections to the instances (upstream.ts), and just enough HTTP/1.1 (http1.ts) to pass each
// request and response on unbuffered, with backpressure. Routing, counting and the access log
// stay in server.ts (FrontCore): each request on a kept client connection asks it afresh.
import type { Socket, TCPSocketListener } from "bun";
import { connect, endSoon, flush, pause, pool, resume, send, type Out, type UpSocket } from "./upstream.ts";
import type { Route, Upstream } from "./routes.ts";
import {
  ChunkedReader, closeFrame, headEnd, MAX_HEAD, parseRequestHead, parseResponseHead, plainResponse, renderResponseHead, rewriteRequestHead,
  type RequestHead, type ResponseHead,
} from "./http1.ts";

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
  warn(msg: string, fields: Record<string, unknown>): void;
  /** An open WebSocket relay counts on its instance and is closed with 1001 when its drain ends. */
  addSocket(upstreamPort: number, ws: { close(code: number, reason: string): void }): void;
  removeSocket(upstreamPort: number, ws: { close(code: number, reason: string): void }): void;
  readonly retiring: boolean;
}

/**
 * A client that has not sent a whole request head this long after its first byte is answered 408
 * and closed (Bun.serve closed such clients after about 10 s; nginx's client_header_timeout is 60 s).
 */
export const HEAD_TIMEOUT_MS = 10_000;
/** After the front sends a WebSocket close frame, both sides are cut if they are still open this long after. */
const WS_CLOSE_MS = 1_000;
/** After its listener stops, a kept client connection that stays idle this long is closed. */
const STOP_GRACE_MS = 500;

type ClientSocket = Socket<Conn>;

/** One request and its response, from the head to the end of both bodies. */
class Exchange {
  up: Upstream | null = null;
  usock: UpSocket | null = null;
  reused = false;
  started = performance.now();
  sentAt = 0;
  reqDone: boolean;
  reqLeft = 0;
  reqChunks: ChunkedReader | null = null;
  res: ResponseHead | null = null;
  resBuf: Buffer | null = null;
  resLeft = 0;
  resChunks: ChunkedReader | null = null;
  /** Bytes of the response already written to the client (a failure after that cannot be a 502). */
  answeredBytes = false;
  clientClose = false;
  finished = false;
  counted = false;
  ws: WsRelay | null = null;
  private retried = false;

  constructor(readonly conn: Conn, readonly head: RequestHead, readonly route: Route) {
    this.reqDone = head.body.kind === "none";
    if (head.body.kind === "length") this.reqLeft = head.body.length;
    if (head.body.kind === "chunked") this.reqChunks = new ChunkedReader();
  }

  get core(): FrontCore { return this.conn.core; }

  async begin(): Promise<void> {
    let exclude: number | null = null;
    for (let attempt = 0; attempt < 2; attempt++) {
      const up: Upstream | null = this.core.pickNow(this.route.port, exclude) ?? await this.core.pick(this.route.port, exclude);
      if (this.conn.gone) return this.finish(499);
      if (!up) {
        this.core.reject("holdTimeout");
        return this.selfAnswer(503, "Service Unavailable", "no instance is ready\n", { "Retry-After": "1" });
      }
      this.up = up;
      this.core.engage(up);
      this.counted = true;
      let s = this.head.websocket ? null : pool.take(up.port);
      this.reused = s !== null;
      if (!s) {
        try { s = await connect(up.port); } catch (e) {
          this.uncount();
          if (this.conn.gone) return this.finish(499);
          // a refused connection sent nothing: a request without a body may go to another instance once
          if (this.head.body.kind === "none" && attempt === 0) { exclude = up.port; continue; }
          this.core.reject("upstreamFailed");
          this.core.warn("front: upstream failed", { port: this.route.port, upstream: up.id, error: String(e) });
          return this.selfAnswer(502, "Bad Gateway", "the instance did not answer\n");
        }
        s.setNoDelay(true);
      }
      if (this.conn.gone) { s.data.dead = true; s.end(); this.uncount(); return this.finish(499); }
      this.attach(s);
      return;
    }
  }

  private attach(s: UpSocket): void {
    this.usock = s;
    s.data.ex = this;
    this.sentAt = performance.now();
    send(s, Buffer.from(rewriteRequestHead(this.head, { peer: this.conn.peer, proto: this.conn.proto }), "latin1"), null);
    this.conn.bodyReady();
  }

  /** Passes on request body bytes from `buf[from..]`; returns how many belong to this request. */
  body(buf: Buffer, from: number): number {
    if (this.reqDone || !this.usock) return 0;
    let n: number;
    if (this.reqChunks) {
      n = this.reqChunks.feed(buf, from);
      if (this.reqChunks.error) { this.abortRequest(400, "Bad Request", `a malformed chunked body: ${this.reqChunks.error}\n`); return buf.length - from; }
      if (this.reqChunks.data > this.route.maxBody) {
        this.core.reject("tooLarge");
        this.abortRequest(413, "Content Too Large", `request body over ${this.route.maxBody} bytes (http.maxBody)\n`);
        return buf.length - from;
      }
      if (this.reqChunks.done) this.reqDone = true;
    } else {
      n = Math.min(this.reqLeft, buf.length - from);
      this.reqLeft -= n;
      if (this.reqLeft === 0) this.reqDone = true;
    }
    if (n > 0) send(this.usock, from === 0 && n === buf.length ? buf : buf.subarray(from, from + n), this.conn.sock);
    if (this.reqDone && this.res && !this.finished && this.responseComplete()) this.done();
    return n;
  }

  /** The request cannot go on (bad or too large body): the instance connection is cut, the client answered and closed. */
  private abortRequest(status: number, reason: string, text: string): void {
    if (this.usock) { this.usock.data.dead = true; this.usock.data.ex = null; this.usock.terminate(); this.usock = null; }
    this.uncount();
    if (this.answeredBytes) { this.conn.sock.terminate(); this.finish(this.res?.status ?? status); return; }
    this.selfAnswer(status, reason, text, {}, true);
  }

  fromUpstream(buf: Buffer): void {
    if (this.ws) { this.ws.fromUpstream(buf); return; }
    if (this.finished) return;
    const client = this.conn.sock;
    let from = 0;
    /** Where the bytes for the client start in `buf`: an unchanged head goes with the body in one write. */
    let writeFrom = 0;
    if (!this.res) {
      this.resBuf = this.resBuf ? Buffer.concat([this.resBuf, buf]) : buf;
      for (;;) {
        const end = headEnd(this.resBuf);
        if (end < 0) {
          if (this.resBuf.length > 4 * MAX_HEAD) this.badUpstream("a response head over 256 KiB");
          return;
        }
        const parsed = parseResponseHead(this.resBuf.toString("latin1", 0, end), this.head.method);
        if (!parsed.ok) return this.badUpstream(parsed.error);
        const h = parsed.head;
        if (h.status >= 100 && h.status < 200 && h.status !== 101) {   // 100 Continue and the like pass on
          send(client, Buffer.from(renderResponseHead(h, false), "latin1"), this.usock);
          this.resBuf = this.resBuf.subarray(end);
          if (this.resBuf.length === 0) { this.resBuf = null; return; }
          continue;
        }
        this.res = h;
        this.core.upstreamSeconds((performance.now() - this.sentAt) / 1000);
        buf = this.resBuf;
        from = end;
        this.resBuf = null;
        break;
      }
      const h = this.res;
      if (h.status === 101 && this.head.websocket) {
        send(client, Buffer.from(renderResponseHead(h, false), "latin1"), this.usock);
        this.answeredBytes = true;
        this.ws = new WsRelay(this);
        if (from < buf.length) this.ws.fromUpstream(buf.subarray(from));
        return;
      }
      // the client's connection ends with this answer when it asked, when the body lasts until the
      // instance closes, when the front is being replaced, or when the request body is not all read
      this.clientClose = !this.conn.keepAlive(this.head) || h.body.kind === "close" || this.core.retiring || this.conn.stopping || !this.reqDone;
      if (h.plain && !this.clientClose) writeFrom = 0;
      else { send(client, Buffer.from(renderResponseHead(h, this.clientClose), "latin1"), this.usock); writeFrom = from; }
      this.answeredBytes = true;
      if (h.body.kind === "length") this.resLeft = h.body.length;
      if (h.body.kind === "chunked") this.resChunks = new ChunkedReader();
    }
    const h = this.res!;
    const rest = buf.length - from;
    let n = rest;
    if (h.body.kind === "none") n = 0;
    else if (h.body.kind === "length") { n = Math.min(this.resLeft, rest); this.resLeft -= n; }
    else if (this.resChunks) {
      n = this.resChunks.feed(buf, from);
      if (this.resChunks.error) return this.badUpstream(this.resChunks.error);
    }
    const stop = from + n;
    if (stop > writeFrom) send(client, writeFrom === 0 && stop === buf.length ? buf : buf.subarray(writeFrom, stop), this.usock);
    if (n < rest && this.usock) this.usock.data.dead = true;   // bytes past the response: not reusable
    if (this.responseComplete()) {
      if (!this.reqDone) this.clientClose = true;
      this.done();
    }
  }

  private responseComplete(): boolean {
    const h = this.res!;
    return h.body.kind === "none" || (h.body.kind === "length" && this.resLeft === 0) || (this.resChunks?.done ?? false);
  }

  private badUpstream(error: string): void {
    this.core.reject("upstreamFailed");
    this.core.warn("front: upstream sent a malformed response", { port: this.route.port, upstream: this.up?.id, error });
    const s = this.usock;
    this.usock = null;
    if (s) { s.data.dead = true; s.data.ex = null; s.terminate(); }
    this.uncount();
    if (this.answeredBytes) { this.conn.sock.terminate(); this.finish(this.res?.status ?? 502); }
    else this.selfAnswer(502, "Bad Gateway", "the instance did not finish its answer\n", {}, true);
  }

  upstreamClosed(): void {
    if (this.ws) { this.ws.upstreamClosed(); return; }
    if (this.finished) return;
    this.usock = null;
    if (this.res && this.res.body.kind === "close") { this.clientClose = true; this.done(); return; }
    this.uncount();
    if (this.answeredBytes) { this.conn.sock.terminate(); this.finish(this.res?.status ?? 502); return; }
    // a kept connection the instance closed just as it was reused: a request without a body is sent again once
    if (this.reused && !this.retried && this.head.body.kind === "none" && this.up) {
      this.retried = true;
      const up = this.up;
      this.core.engage(up);
      this.counted = true;
      this.reused = false;
      connect(up.port).then((s) => {
        s.setNoDelay(true);
        if (this.conn.gone) { s.data.dead = true; s.end(); this.uncount(); this.finish(499); return; }
        this.attach(s);
      }, () => { this.uncount(); this.core.reject("upstreamFailed"); this.selfAnswer(502, "Bad Gateway", "the instance did not answer\n"); });
      return;
    }
    this.core.reject("upstreamFailed");
    this.core.warn("front: upstream closed before answering", { port: this.route.port, upstream: this.up?.id });
    this.selfAnswer(502, "Bad Gateway", "the instance did not answer\n", {}, !this.reqDone);
  }

  /** The response is complete: the instance connection goes back to the pool, the client's waits for its next request. */
  private done(): void {
    const s = this.usock;
    this.usock = null;
    if (s) {
      if (!s.data.dead && !this.res!.close && this.reqDone && s.data.out.length === 0) pool.put(s, Date.now());
      else { s.data.dead = true; s.data.ex = null; s.end(); }
    }
    this.uncount();
    this.finish(this.res!.status);
  }

  /** The front answers itself (the instance never saw the request, or the request cannot go on). */
  selfAnswer(status: number, reason: string, text: string, extra: Record<string, string> = {}, close = false): void {
    this.clientClose = close || !this.reqDone || !this.conn.keepAlive(this.head) || this.core.retiring || this.conn.stopping;
    if (!this.conn.gone) send(this.conn.sock, Buffer.from(plainResponse(status, reason, text, extra, this.clientClose)), null);
    this.finish(status);
  }

  uncount(): void {
    if (!this.counted) return;
    this.counted = false;
    this.core.release(this.up!.port);
  }

  finish(status: number): void {
    if (this.finished) return;
    this.finished = true;
    this.core.answered({
      port: this.route.port, method: this.head.method, path: this.head.target, status, upstream: this.up?.id ?? null,
      started: this.started, bytes: this.res?.length ?? null,
    });
    this.conn.exchangeDone(this);
  }

  /** The client went away: the instance's request is cut (a Bun or Node server sees its request aborted). */
  clientGone(): void {
    if (this.ws) { this.ws.clientClosed(); return; }
    if (this.finished) return;
    const s = this.usock;
    this.usock = null;
    this.core.reject("clientAborted");
    this.finish(499);
    if (!s) { this.uncount(); return; }
    s.data.dead = true;
    s.data.ex = null;
    s.terminate();
    // it stays in flight on its instance a moment longer: until the instance could see the cut
    // (an instance in this process, as in the tests, sees it on its next turn of the event loop)
    setTimeout(() => this.uncount(), 5);
  }
}

/** A WebSocket after the instance's 101: bytes pass both ways untouched. */
class WsRelay {
  private closing = false;
  private open = true;
  private readonly port: number;

  constructor(private readonly ex: Exchange) {
    this.port = ex.up!.port;
    ex.core.addSocket(this.port, this);
    ex.conn.ws = this;
  }

  fromClient(buf: Buffer): void {
    if (this.closing) { this.ex.conn.sock.end(); return; }   // its answer to our close frame
    if (this.ex.usock) send(this.ex.usock, buf, this.ex.conn.sock);
  }

  fromUpstream(buf: Buffer): void {
    if (this.closing) { this.ex.usock?.end(); return; }
    send(this.ex.conn.sock, buf, this.ex.usock);
  }

  /** Closes both sides with a close frame (1001 when the instance's drain ends or the front is replaced). */
  close(code: number, reason: string): void {
    if (this.closing || !this.open) return;
    this.closing = true;
    send(this.ex.conn.sock, closeFrame(code, reason, null), null);
    if (this.ex.usock) send(this.ex.usock, closeFrame(code, reason, crypto.getRandomValues(new Uint8Array(4))), null);
    setTimeout(() => { this.ex.conn.sock.terminate(); this.ex.usock?.terminate(); }, WS_CLOSE_MS).unref?.();
  }

  upstreamClosed(): void {
    this.ex.usock = null;
    endSoon(this.ex.conn.sock);
    this.ended();
  }

  clientClosed(): void {
    const s = this.ex.usock;
    if (s) endSoon(s);
    this.ended();
  }

  private ended(): void {
    if (!this.open) return;
    this.open = false;
    this.ex.clientClose = true;
    this.ex.core.removeSocket(this.port, this);
    this.ex.uncount();
    this.ex.finish(101);
  }
}

/** One client connection; its requests run one at a time (a pipelined one waits, the socket paused). */
class Conn {
  buf: Buffer | null = null;
  ex: Exchange | null = null;
  ws: WsRelay | null = null;
  gone = false;
  /** The front closes this connection after what it has queued (no more requests are read). */
  ending = false;
  headSince = 0;
  idleSince = Date.now();
  readonly out: Uint8Array[] = [];
  waiting: Socket<Out> | null = null;
  endAfter = false;
  paused = false;
  sock!: ClientSocket;
  peer = "";

  constructor(readonly listener: SocketListener) {}

  get core(): FrontCore { return this.listener.core; }
  get proto(): "http" | "https" { return this.listener.tls ? "https" : "http"; }
  get stopping(): boolean { return this.listener.stopped; }

  keepAlive(h: RequestHead): boolean { return h.keepAlive && h.version === "HTTP/1.1"; }

  data(buf: Buffer): void {
    if (this.ws) { this.ws.fromClient(buf); return; }
    if (this.ending) return;   // answered and closing: the rest of what it sends is not read
    const ex = this.ex;
    if (ex && ex.usock && !ex.reqDone) {
      const b = this.buf ? Buffer.concat([this.buf, buf]) : buf;
      this.buf = null;
      const n = ex.body(b, 0);
      if (n < b.length && !ex.finished) { this.buf = b.subarray(n); pause(this.sock); }
      return;
    }
    this.buf = this.buf ? Buffer.concat([this.buf, buf]) : buf;
    // while a request waits for its instance or its answer the client is still read (its close
    // must abort the instance's request); what it sends meanwhile is kept, up to a bound
    if (ex) { if (this.buf.length > 2 * MAX_HEAD) pause(this.sock); return; }
    this.next();
  }

  /** The instance connection is ready: the body bytes already read go first. */
  bodyReady(): void {
    const ex = this.ex!;
    if (this.buf) {
      const buf = this.buf;
      this.buf = null;
      const n = ex.body(buf, 0);
      if (ex.finished) return;
      if (n < buf.length) { this.buf = buf.subarray(n); return; }   // the next request waits
    }
    resume(this.sock);
  }

  /** Parses the next request head in `buf`, if whole. */
  next(): void {
    while (!this.ex && !this.gone && this.buf) {
      const end = headEnd(this.buf);
      if (end < 0 || end > MAX_HEAD) {
        if (this.buf.length > MAX_HEAD) return this.refuse(431, "Request Header Fields Too Large", `request head over ${MAX_HEAD} bytes\n`);
        if (this.headSince === 0) this.headSince = Date.now();
        return;
      }
      const text = this.buf.toString("latin1", 0, end);
      this.buf = end < this.buf.length ? this.buf.subarray(end) : null;
      this.headSince = 0;
      const parsed = parseRequestHead(text);
      if (!parsed.ok) {
        const reason = parsed.status === 400 ? "Bad Request" : parsed.status === 501 ? "Not Implemented" : "HTTP Version Not Supported";
        return this.refuse(parsed.status, reason, `${parsed.error}\n`);
      }
      this.start(parsed.head);
    }
    if (!this.ex && !this.gone) resume(this.sock);
  }

  private refuse(status: number, reason: string, text: string): void {
    this.buf = null;
    this.ending = true;
    send(this.sock, Buffer.from(plainResponse(status, reason, text, {}, true)), null);
    endSoon(this.sock);
  }

  private start(head: RequestHead): void {
    const core = this.core;
    const port = this.listener.port;
    core.hit(port);
    const route = core.route(port);
    const ex = new Exchange(this, head, route ?? { port, listen: "", health: null, drainMs: 0, holdMs: 0, maxBody: 0, upstreams: [], rotation: [], gated: false });
    this.ex = ex;
    if (!route) return ex.selfAnswer(503, "Service Unavailable", "no route on this port\n", { "Retry-After": "1" });
    if (head.body.kind === "length" && head.body.length > route.maxBody) {
      core.reject("tooLarge");
      return ex.selfAnswer(413, "Content Too Large", `request body over ${route.maxBody} bytes (http.maxBody)\n`, {}, true);
    }
    void ex.begin();
  }

  exchangeDone(ex: Exchange): void {
    if (this.ex !== ex) return;
    this.ex = null;
    this.ws = null;
    this.idleSince = Date.now();
    if (this.gone) return;
    if (ex.clientClose || this.listener.stopped) { this.buf = null; this.ending = true; endSoon(this.sock); return; }
    if (this.buf) this.next(); else resume(this.sock);
  }

  closed(): void {
    this.gone = true;
    this.listener.conns.delete(this);
    this.ex?.clientGone();
  }
}

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
   * `Connection: close`). `force` cuts them all.
   */
  stop(force = false): void {
    if (this.stopped) return;
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
