// Replacing the running front with a new one (a new agent version) without a refused connection:
// the new front gets the same table on its own control socket and listens on every public port
// beside the old one (SO_REUSEPORT); only then does the old one stop accepting, finish what it
// has in flight and exit. The new socket then takes the standard path.
import { existsSync, renameSync } from "node:fs";
import { enableMigrateReq, readMigrateReq, type MigrateReq } from "./migrate.ts";

export interface HandoverOptions {
  /** The running front's control socket (the standard path, e.g. STATE_DIR/front.sock). */
  socket: string;
  /** Starts the new front with `--socket <path>` (from the new binary); returns its pid. */
  spawn: (socket: string) => number | Promise<number>;
  /** How long the new front may take to listen and see its instances ready (default 30 s). */
  timeoutMs?: number;
  /** Turn net.ipv4.tcp_migrate_req on when it is off (default true). */
  migrateReq?: boolean;
}

export interface HandoverResult {
  /** The new front's pid (it now answers on `socket`). */
  pid: number;
  /** The old front's pid; it exits on its own once its requests in flight finish. */
  oldPid: number;
  /**
   * net.ipv4.tcp_migrate_req: "set" (written 1 now), "on" (was already 1), "unavailable" (no such
   * setting on this kernel, or not writable: connections in the old listener's accept queue when
   * it closes are reset).
   */
  migrateReq: MigrateReq;
}

export async function handover(opts: HandoverOptions): Promise<HandoverResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const old = await call(opts.socket, "GET", "/v1/state");
  const table = await call(opts.socket, "GET", "/v1/table");
  const next = `${opts.socket}.next`;
  const pid = await opts.spawn(next);
  const fail = (what: string) => new Error(`front handover: the new front (pid ${pid}, ${next}) ${what} within ${timeoutMs} ms; the old one keeps serving (stop the new one and retry)`);
  for (;;) {
    try { await call(next, "GET", "/v1/state"); break; } catch { /* not up yet */ }
    if (Date.now() > deadline) throw fail("did not open its control socket");
    await Bun.sleep(20);
  }
  await call(next, "PUT", "/v1/table", table);
  // every public port listening, and every route that had instances in rotation has them again
  const wanted = (old.routes as { port: number; rotation: number[] }[]);
  for (;;) {
    const s = await call(next, "GET", "/v1/state");
    const listening = new Set<number>(s.listening);
    const ready = wanted.every((r) => listening.has(r.port)
      && (r.rotation.length === 0 || (s.routes as { port: number; rotation: number[] }[]).some((n) => n.port === r.port && n.rotation.length > 0)));
    if (ready) break;
    if (Date.now() > deadline) throw fail("did not listen on every port with its instances ready");
    await Bun.sleep(20);
  }
  const migrateReq = opts.migrateReq === false ? readMigrateReq() : enableMigrateReq();
  await call(opts.socket, "POST", "/v1/retire");
  // the old front closes its control socket first (Bun unlinks the path); then ours takes it
  for (;;) {
    if (!existsSync(opts.socket)) break;
    try { await call(opts.socket, "GET", "/v1/state"); } catch { break; }
    if (Date.now() > deadline + 5000) throw new Error(`front handover: the old front (pid ${old.pid}) still answers on ${opts.socket} after POST /v1/retire`);
    await Bun.sleep(10);
  }
  renameSync(next, opts.socket);
  return { pid, oldPid: old.pid, migrateReq };
}

async function call(socket: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`http://front${path}`, { unix: socket, method, body: body === undefined ? undefined : JSON.stringify(body) } as RequestInit);
  const json: any = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`front handover: ${method} ${path} on ${socket}: ${res.status} ${json?.error ?? ""}`.trim());
  return json;
}
