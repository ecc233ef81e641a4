// One client connection of the socket data path and its request loop: heads parsed with
// http1.ts, each request passed on unbuffered to a pooled instance connection (upstream.ts) and
// its response back, with backpressure; one request at a time (a pipelined one waits). After an
// instance's 101 the connection becomes a WebSocket pipe (websocket.ts).
import type { Socket } from "bun";
import { connect, endSoon, pause, pool, resume, send, type Out, type UpSocket } from "./upstream.ts";
import type { Route, Upstream } from "./routes.ts";
import {
  ChunkedReader, headEnd, MAX_HEAD, parseRequestHead, parseResponseHead, plainResponse, renderResponseHead, rewriteRequestHead,
  type RequestHead, type ResponseHead,
} from "./http1.ts";
import type { FrontCore, SocketListener } from "./sockets.ts";
import { WsRelay } from "./websocket.ts";

/**
 * A client that has not sent a whole request head this long after its first byte is answered 408
 * and closed (Bun.serve closed such clients after about 10 s; nginx's client_header_timeout is 60 s).
 */
export const HEAD_TIMEOUT_MS = 10_000;
/** After its listener stops, a kept client connection that stays idle this long is closed. */
export const STOP_GRACE_MS = 500;

type ClientSocket = Socket<Conn>;

/** One request and its response, from the head to the end of both bodies. */
export class Exchange {
  up: Upstream | null = null;
  usock: UpSocket | null = null;
  reused = false;
  started = performance.now();
  sentAt = 0;
  /** When the response head was read (the front's own time runs again from here to the end). */
  resAt = 0;
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
    send(s, Buffer.from(rewriteRequestHead(this.head, { peer: this.conn.peer, proto: this.conn.proto }), "latin1"), null);
    this.sentAt = performance.now();
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
        this.resAt = performance.now();
        this.core.upstreamSeconds((this.resAt - this.sentAt) / 1000);
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
    if (this.resAt > 0) this.core.ownSeconds((this.sentAt - this.started + performance.now() - this.resAt) / 1000);
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

/** One client connection; its requests run one at a time (a pipelined one waits, the socket paused). */
export class Conn {
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
