// The front's routing planner: desired routes (port -> instances, with their readiness) and the
// current table in, the next table and the drains out. Pure: no I/O, no clock (`now` is given).
// It never puts an instance that is not ready into rotation, and never takes the last ready
// instances out of rotation until their replacements are all ready (the cutover gate).

/** One instance of a role's `http:` process, listening on a loopback port the agent picked. */
export interface Upstream {
  /** The agent's name for the instance, e.g. "web#0@3f2a1c9"; shown in the state, never parsed. */
  id: string;
  /** Loopback port; the identity of an upstream (two instances never share one). */
  port: number;
}

export interface DesiredUpstream extends Upstream {
  /** http.health answered 2xx at the front's last probe. */
  healthy: boolean;
}

/** One public port's settings, as the agent asks for them and as the table keeps them. */
export interface RouteSettings {
  port: number;
  /** The address to listen on (http.listen), "0.0.0.0" by default. */
  listen: string;
  /** http.health: the readiness path (null: a TCP connect counts as ready). */
  health: string | null;
  drainMs: number;
  holdMs: number;
  maxBody: number;
}

/** What the agent asks for on one public port. */
export interface DesiredRoute extends RouteSettings {
  upstreams: DesiredUpstream[];
}

export interface Route extends RouteSettings {
  /** Every upstream the agent wants on this port (ready or not). */
  upstreams: Upstream[];
  /** Those that receive new requests; empty means new requests are held (hold, then 503). */
  rotation: Upstream[];
  /** True while a cutover waits for its new instances to be ready (the old ones still serve). */
  gated: boolean;
}

/** An upstream that receives no new requests; it may be stopped when idle or at `deadline`. */
export interface Drain {
  port: number;
  upstream: Upstream;
  since: number;
  deadline: number;
}

export interface Table {
  routes: Route[];
  draining: Drain[];
}

export const EMPTY_TABLE: Table = { routes: [], draining: [] };

/**
 * The next table. Per port: the rotation becomes the ready desired upstreams, except while a
 * cutover is gated (upstreams leaving rotation and not every desired one ready yet: the current
 * rotation stays). Upstreams that leave the desired set drain from `now` for the route's drainMs;
 * a drain whose upstream is desired again is cancelled. A port no longer desired drains all of its
 * upstreams. Idempotent: planning the result again with the same input changes nothing.
 */
export function planRoutes(desired: DesiredRoute[], current: Table, now: number): Table {
  const byPort = new Map(current.routes.map((r) => [r.port, r]));
  const routes: Route[] = [];
  const leaving: Drain[] = [];
  for (const d of [...desired].sort((a, b) => a.port - b.port)) {
    const before = byPort.get(d.port);
    const wanted = new Set(d.upstreams.map((u) => u.port));
    const ready = d.upstreams.filter((u) => u.healthy).map(strip);
    const retiring = (before?.rotation ?? []).filter((u) => !wanted.has(u.port));
    const gated = retiring.length > 0 && ready.length < d.upstreams.length;
    const rotation = gated ? before!.rotation : ready;
    for (const u of before?.upstreams ?? []) {
      const stillServing = rotation.some((r) => r.port === u.port);
      if (!wanted.has(u.port) && !stillServing) leaving.push({ port: d.port, upstream: u, since: now, deadline: now + d.drainMs });
    }
    routes.push({
      port: d.port, listen: d.listen, health: d.health, drainMs: d.drainMs, holdMs: d.holdMs, maxBody: d.maxBody,
      // while gated, the retiring upstreams stay listed so that a later plan can still drain them
      upstreams: gated ? unique([...d.upstreams.map(strip), ...retiring]) : d.upstreams.map(strip),
      rotation, gated,
    });
  }
  const kept = new Set(routes.map((r) => r.port));
  for (const r of current.routes) {
    if (kept.has(r.port)) continue;
    for (const u of r.upstreams) leaving.push({ port: r.port, upstream: u, since: now, deadline: now + r.drainMs });
  }
  const live = new Set(routes.flatMap((r) => r.upstreams.map((u) => u.port)));
  const draining = [
    ...current.draining.filter((x) => !live.has(x.upstream.port)),
    ...leaving.filter((x) => !current.draining.some((c) => c.upstream.port === x.upstream.port)),
  ].sort((a, b) => a.upstream.port - b.upstream.port);
  return { routes, draining };
}

/**
 * Which drains are over: an upstream with no request in flight, or past its deadline (its
 * in-flight requests are then cut by stopping it). `inflight` maps upstream port -> requests.
 */
export function settleDrains(draining: Drain[], inflight: ReadonlyMap<number, number>, now: number):
  { done: (Drain & { reason: "idle" | "deadline" })[]; remaining: Drain[] } {
  const done: (Drain & { reason: "idle" | "deadline" })[] = [];
  const remaining: Drain[] = [];
  for (const d of draining) {
    if ((inflight.get(d.upstream.port) ?? 0) === 0) done.push({ ...d, reason: "idle" });
    else if (now >= d.deadline) done.push({ ...d, reason: "deadline" });
    else remaining.push(d);
  }
  return { done, remaining };
}

/**
 * The upstream for a new request: among the rotation, the one with the fewest requests in flight;
 * ties go round-robin from `turn` (a counter the caller increments). Null: hold the request.
 */
export function pickUpstream(rotation: Upstream[], inflight: ReadonlyMap<number, number>, turn: number): Upstream | null {
  if (rotation.length === 0) return null;
  let best: Upstream | null = null;
  let bestLoad = Infinity;
  for (let i = 0; i < rotation.length; i++) {
    const u = rotation[(turn + i) % rotation.length]!;
    const load = inflight.get(u.port) ?? 0;
    if (load < bestLoad) { best = u; bestLoad = load; }
  }
  return best;
}

function strip(u: Upstream): Upstream {
  return { id: u.id, port: u.port };
}

function unique(list: Upstream[]): Upstream[] {
  return list.filter((u, i) => list.findIndex((x) => x.port === u.port) === i);
}
