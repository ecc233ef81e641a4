// The agent's side of the front's control socket (control.ts is the wire format): PUT the whole
// table, read the state. Every call is short and bounded; a front that does not answer throws.
import { join } from "node:path";
import type { RouteRequest } from "./control.ts";

/** The control socket inside the state directory (mode 0600; root only). */
export function frontSocket(stateDir: string): string {
  return join(stateDir, "front.sock");
}

export interface FrontRouteState {
  port: number;
  listen: string;
  health: string | null;
  gated: boolean;
  rotation: number[];
  upstreams: { id: string; port: number; healthy: boolean; inflight: number; requests: number }[];
}

export interface FrontState {
  pid: number;
  /** The agent version the front was built as (a handover replaces a front of another version). */
  version?: string;
  routes: FrontRouteState[];
  draining: { port: number; upstream: { id: string; port: number }; since: number; deadline: number; inflight: number }[];
  drained: { port: number; upstream: { id: string; port: number }; reason: string; at: number }[];
  held: number;
  rejected: Record<string, number>;
  /** Ports the front could not listen on (when the front reports them). */
  errors?: { port: number; error: string }[];
}

/** A route as the agent sends it: the wire format plus pass-through settings (tls). */
export type TableRoute = RouteRequest & { tls?: { cert: string; key: string } };

export class FrontClient {
  constructor(private socket: string, private timeoutMs = 2000) {}

  async put(routes: TableRoute[]): Promise<FrontState> {
    const r = await this.call("PUT", "/v1/table", JSON.stringify({ routes }));
    const body = await r.json() as FrontState & { error?: string };
    if (!r.ok) throw new Error(`the front refused the table: ${body.error ?? r.status}`);
    return body;
  }

  async state(): Promise<FrontState> {
    const r = await this.call("GET", "/v1/state");
    if (!r.ok) throw new Error(`the front answered ${r.status} to GET /v1/state`);
    return await r.json() as FrontState;
  }

  /** Prometheus text from GET /v1/metrics, or null when this front has none. */
  async metrics(): Promise<string | null> {
    const r = await this.call("GET", "/v1/metrics").catch(() => null);
    return r && r.ok ? await r.text() : null;
  }

  private call(method: string, path: string, body?: string): Promise<Response> {
    return fetch(`http://front${path}`, {
      method, body, unix: this.socket, signal: AbortSignal.timeout(this.timeoutMs),
      headers: body ? { "content-type": "application/json" } : {},
    } as RequestInit);
  }
}
