// The front's counters for operators: Prometheus text for GET /v1/metrics, the per-route request
// rate (requests/s over the last 10 s) for GET /v1/state, and the optional JSON access log.
import { Registry } from "../metrics/registry.ts";

const RATE_WINDOW_S = 10;
/** Upstream latency buckets (seconds): a proxy's answers are mostly well under 100 ms. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** The front's own time per request (microseconds to a few milliseconds). */
const OWN_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1];
const DRAIN_BUCKETS = [0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export class FrontMetrics {
  readonly registry = new Registry();
  readonly requests = this.registry.counter("agent_front_requests_total", "Requests answered by the front, by public port and status code", ["port", "code"]);
  /** Both observed once per request, without labels: the registry counts those without building a key. */
  readonly upstreamSeconds = this.registry.histogram("agent_front_upstream_seconds", "Time from sending a request to an instance to its response headers", LATENCY_BUCKETS);
  readonly ownSeconds = this.registry.histogram("agent_front_own_seconds",
    "The front's own time per request on the socket data path: from its head read to its head written to the instance, plus from the response head read to its last byte written to the client", OWN_BUCKETS);
  readonly connections = this.registry.gauge("agent_front_connections", "Client requests and WebSockets open on the front's public ports");
  readonly drains = this.registry.counter("agent_front_drains_total", "Upstream drains that ended, by reason (idle or deadline)", ["reason"]);
  readonly drainSeconds = this.registry.histogram("agent_front_drain_seconds", "How long an upstream's drain took", DRAIN_BUCKETS);
  readonly rejected = this.registry.counter("agent_front_rejected_total", "Requests the front answered itself instead of an instance, by reason", ["reason"]);
  /** Per public port: requests started in each of the last RATE_WINDOW_S whole seconds. */
  private readonly slots = new Map<number, { second: number[]; count: number[] }>();

  /** Answers per "port code", added to `requests` at render (no label lookup per request). */
  private readonly answered = new Map<string, number>();

  /** Counts one answer for agent_front_requests_total. */
  answer(port: number, code: number): void {
    const k = `${port} ${code}`;
    this.answered.set(k, (this.answered.get(k) ?? 0) + 1);
  }

  render(): string {
    for (const [k, n] of this.answered) {
      const [port, code] = k.split(" ") as [string, string];
      this.requests.inc({ port, code }, n);
    }
    this.answered.clear();
    return this.registry.render();
  }

  /** Counts one request on `port` at `now` (ms) for the rate. */
  hit(port: number, now: number): void {
    const s = Math.floor(now / 1000);
    let r = this.slots.get(port);
    if (!r) { r = { second: new Array(RATE_WINDOW_S).fill(-1), count: new Array(RATE_WINDOW_S).fill(0) }; this.slots.set(port, r); }
    const i = s % RATE_WINDOW_S;
    if (r.second[i] !== s) { r.second[i] = s; r.count[i] = 0; }
    r.count[i]!++;
  }

  /** Requests/s on `port` over the last RATE_WINDOW_S seconds (the current second included). */
  rate(port: number, now: number): number {
    const r = this.slots.get(port);
    if (!r) return 0;
    const s = Math.floor(now / 1000);
    let n = 0;
    for (let i = 0; i < RATE_WINDOW_S; i++) if (r.second[i]! > s - RATE_WINDOW_S) n += r.count[i]!;
    return Math.round((n / RATE_WINDOW_S) * 10) / 10;
  }

  forget(port: number): void {
    this.slots.delete(port);
  }
}

export interface AccessEntry {
  time: string; port: number; method: string; path: string; status: number; upstream: string | null; ms: number; bytes: number | null;
}

/**
 * One JSON line per request on stdout (the journal keeps it apart from the front's own log on
 * stderr); console.log, not process.stdout (a Node stream, about 8 MB of RSS).
 */
export function writeAccess(e: AccessEntry): void {
  console.log(JSON.stringify(e));
}
