// The socket data path's plumbing: writes that respect backpressure (what the kernel did not
// take is kept, the sending side paused until the receiver drains) and the pool of kept-alive
// connections to the instances. Knows nothing of HTTP; connection.ts drives it.
import type { Socket } from "bun";

/** An idle pooled connection to an instance is closed after this (Node's keepAliveTimeout is 5 s). */
const POOL_IDLE_MS = 4_000;
/** Idle pooled connections kept per instance. */
const POOL_MAX = 64;

/** What each socket of the data path carries for its writes. */
export interface Out { out: Uint8Array[]; waiting: Socket<Out> | null; endAfter: boolean; paused: boolean }
/** The exchange an instance connection serves now (connection.ts), told of what the instance sends. */
export interface UpstreamUser { fromUpstream(buf: Buffer): void; upstreamClosed(): void }
export interface UpData extends Out { port: number; ex: UpstreamUser | null; idleSince: number; dead: boolean }
export type UpSocket = Socket<UpData>;

/** Writes `data` to `dst`, keeping what the kernel did not take and pausing `src` until `dst` drains. */
export function send(dst: Socket<Out>, data: Uint8Array, src: Socket<Out> | null): void {
  const d = dst.data;
  if (d.out.length > 0) { d.out.push(Buffer.from(data)); pauseFor(d, src); return; }
  const n = dst.write(data);
  if (n < data.length) { d.out.push(Buffer.from(data.subarray(Math.max(0, n)))); pauseFor(d, src); }
}
function pauseFor(d: Out, src: Socket<Out> | null): void {
  if (src && d.waiting !== src) { d.waiting = src; pause(src); }
}
export function pause(s: Socket<Out>): void {
  if (!s.data.paused) { s.data.paused = true; s.pause(); }
}
export function resume(s: Socket<Out>): void {
  if (s.data.paused) { s.data.paused = false; s.resume(); }
}
export function flush(dst: Socket<Out>): void {
  const d = dst.data;
  while (d.out.length > 0) {
    const first = d.out[0]!;
    const n = dst.write(first);
    if (n < first.length) { d.out[0] = first.subarray(Math.max(0, n)); return; }
    d.out.shift();
  }
  if (d.waiting) { const w = d.waiting; d.waiting = null; resume(w); }
  if (d.endAfter) dst.end();
}
/** Ends `s` once what is queued for it is written. */
export function endSoon(s: Socket<Out>): void {
  if (s.data.out.length > 0) s.data.endAfter = true; else s.end();
}

/**
 * Keep-alive connections to the instances, per loopback port. An idle one that goes is closed
 * outright, not half-closed: an instance may hold a half-closed connection until its own idle
 * timeout (Bun.serve: 10 s, measured), and with it the stopping front's process.
 */
class Pool {
  private readonly idle = new Map<number, UpSocket[]>();

  take(port: number): UpSocket | null {
    const list = this.idle.get(port);
    while (list && list.length > 0) {
      const s = list.pop()!;
      if (!s.data.dead) return s;
    }
    return null;
  }

  put(s: UpSocket, now: number): void {
    s.data.ex = null;
    s.data.idleSince = now;
    let list = this.idle.get(s.data.port);
    if (!list) { list = []; this.idle.set(s.data.port, list); }
    if (list.length >= POOL_MAX) { s.data.dead = true; s.terminate(); return; }
    list.push(s);
  }

  drop(s: UpSocket): void {
    s.data.dead = true;
    const list = this.idle.get(s.data.port);
    const i = list?.indexOf(s) ?? -1;
    if (i >= 0) list!.splice(i, 1);
  }

  sweep(now: number): void {
    for (const [port, list] of this.idle) {
      for (const s of list.filter((x) => now - x.data.idleSince > POOL_IDLE_MS)) { this.drop(s); s.terminate(); }
      if (list.length === 0) this.idle.delete(port);
    }
  }

  close(): void {
    const all = [...this.idle.values()].flat();   // a closed socket's handler takes it off its list (drop)
    this.idle.clear();
    for (const s of all) { s.data.dead = true; s.terminate(); }
  }
}

const UP_HANDLERS = {
  binaryType: "buffer" as const,
  data(s: UpSocket, buf: Buffer) {
    const ex = s.data.ex;
    if (ex) ex.fromUpstream(buf); else { pool.drop(s); s.terminate(); }   // an idle instance connection does not talk
  },
  drain(s: UpSocket) { flush(s); },
  close(s: UpSocket) {
    pool.drop(s);
    s.data.ex?.upstreamClosed();
  },
  error() { /* close follows */ },
};

export const pool = new Pool();

export function connect(port: number): Promise<UpSocket> {
  return Bun.connect<UpData>({
    hostname: "127.0.0.1", port, socket: UP_HANDLERS,
    data: { port, ex: null, idleSince: 0, dead: false, out: [], waiting: null, endAfter: false, paused: false },
  });
}

/** Closes the idle pooled connections (the front is stopping). */
export function closePool(): void {
  pool.close();
}
