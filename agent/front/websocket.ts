// The WebSocket pipe of the socket data path: after the instance's 101 the bytes pass both ways
// untouched (with backpressure); the front only closes both sides with 1001 when the instance's
// drain ends or the front retires.
import { endSoon, send } from "./upstream.ts";
import { closeFrame } from "./http1.ts";
import type { Exchange } from "./connection.ts";

/** After the front sends a WebSocket close frame, both sides are cut if they are still open this long after. */
const WS_CLOSE_MS = 1_000;

/** A WebSocket after the instance's 101: bytes pass both ways untouched. */
export class WsRelay {
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
