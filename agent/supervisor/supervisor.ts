// The set of supervised processes: level-based ensure(), health-gated replace() for a new
// release, adoption of processes a previous agent started, status, stop and detach.
// Every start and exit is written to state.json so that an agent restart never restarts apps.
import type { Clock } from "../core/clock.ts";
import { errorMessage } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { StateStore, ProcessRecord } from "../state/store.ts";
import type { ProcessStatus } from "../status/types.ts";
import { DEFAULT_BACKOFF, type BackoffPolicy } from "./backoff.ts";
import { pastDeadline } from "./health-policy.ts";
import { isSameProcess, startTimeOf } from "../host/proc.ts";
import { rotateIfNeeded, type RotationPolicy } from "./rotate.ts";
import { Unit, type UnitContext } from "./unit.ts";
import { findUntracked } from "./marker.ts";
import type { AdoptResult, ProcessSpec, ReplaceResult, SupervisorEvent, SupervisorTuning } from "./types.ts";

export interface SupervisorDeps {
  clock: Clock;
  log: Logger;
  store: StateStore;
  logs: RotationPolicy;
  tuning?: SupervisorTuning;
  /** Told about every start, exit and health change (metrics, tests, benchmarks). */
  onEvent?: (e: SupervisorEvent) => void;
  /**
   * The agent's state directory (absolute). Every start is marked with it in the process's
   * environment, and adopt() takes over marked processes that state.json does not list.
   */
  stateDir?: string;
}

/** What makes a running process different: a change here restarts it; other fields apply in place. */
export function specHash(s: ProcessSpec): string {
  // A secret counts by name and version (s.secrets.fingerprint), never by its value.
  const env = Object.entries(s.env).filter(([k]) => !s.secrets?.names.includes(k)).sort();
  const key = JSON.stringify([s.argv, s.cwd, env, s.user?.uid, s.user?.gid, s.commit, s.releaseDir, s.port, ...(s.secrets ? [s.secrets.fingerprint] : [])]);
  return new Bun.CryptoHasher("sha256").update(key).digest("hex").slice(0, 16);
}

const infoOf = (s: ProcessSpec) =>
  ({ name: s.name, process: s.process, instance: s.instance, commit: s.commit, releaseDir: s.releaseDir, port: s.port, specHash: specHash(s) });

/** Called once the new processes of an overlapping replace() are healthy, before the old stop. */
export type BeforeRetire = (stopOld: () => Promise<void>) => Promise<ReplaceResult>;

export class Supervisor {
  private units = new Map<string, Unit>();   // the wanted set, by name
  private others = new Set<Unit>();          // candidates of a replace() and units being stopped
  private stops = new Set<Promise<void>>();
  /**
   * state.json's process records belong to this supervisor only once it adopted or started
   * processes. Until then (`agent plan` beside a running daemon) it never writes them: an empty
   * list would make the next agent forget, and start again, processes that still run.
   */
  private owner = false;
  private ctx: UnitContext;
  private rotateTimer: ReturnType<typeof setInterval>;
  private readonly readyDeadlineMs: number;

  constructor(private deps: SupervisorDeps) {
    const t = deps.tuning ?? {};
    const backoff: BackoffPolicy = { ...DEFAULT_BACKOFF, ...t.backoff };
    this.readyDeadlineMs = t.readyDeadlineMs ?? 60_000;
    this.ctx = {
      clock: deps.clock, log: deps.log, backoff, pollMs: t.pollMs ?? 500, stateDir: deps.stateDir,
      persist: () => this.persist(),
      emit: (e) => deps.onEvent?.(e),
    };
    this.rotateTimer = setInterval(() => this.rotateLogs(), t.logCheckMs ?? 1000);
  }

  /**
   * On agent start, as the only agent (under the state dir lock): take over every process in
   * state.json that still runs with the recorded start time, and every process marked with this
   * state dir that no record lists (started by an agent killed before it wrote state.json). A pid
   * now used by another program is never signalled; its record is dropped. Call once, before the
   * first ensure(); ensure() then gives adopted processes their specs.
   */
  adopt(): AdoptResult {
    this.owner = true;
    const result: AdoptResult = { adopted: [], dropped: [] };
    const recorded = this.deps.store.get().processes;
    const found = this.deps.stateDir ? findUntracked(this.deps.stateDir, recorded) : [];
    for (const r of found) {
      this.deps.log.warn("found a process the previous agent started but never recorded (killed before it wrote state.json, or the disk was full); taking it over",
        { process: r.name, pid: r.pid, commit: r.commit.slice(0, 7) });
    }
    // Recorded ones first, newest first: a process found only by its marker never displaces one
    // the previous agent recorded (the next reconcile restarts what is out of date).
    const newest = (rs: readonly ProcessRecord[]) => [...rs].sort((a, b) => b.startedAt - a.startedAt);
    const unrecorded = new Set(found);
    for (const r of [...newest(recorded), ...newest(found)]) {
      if (!isSameProcess(r.pid, r.startTime)) {
        const why = startTimeOf(r.pid) === null ? "gone" : "pid-reused";
        this.deps.log.info(why === "gone" ? "recorded process is gone" : "recorded pid now belongs to another program; left alone",
          { process: r.name, pid: r.pid });
        result.dropped.push({ record: r, why });
        continue;
      }
      const unit = new Unit(this.ctx, { ...r }, null);
      unit.adopt(r, { unrecorded: unrecorded.has(r) });
      if (this.units.has(r.name)) {
        // Two with one name: the agent died during an overlapping replace. The recorded, then the newest, stays.
        result.dropped.push({ record: r, why: "duplicate" });
        this.retire(unit);
      } else {
        this.units.set(r.name, unit);
        result.adopted.push(r);
        this.deps.log.info("adopted", { process: r.name, pid: r.pid, commit: r.commit.slice(0, 7) });
      }
    }
    this.persist();
    return result;
  }

  /**
   * Level-based and idempotent: start what is missing, leave matching processes alone (a crashed
   * one keeps its backoff), restart ones whose spec changed (stop, then start), stop the unwanted.
   * Returns at once; stops finish in the background (settled() waits for them).
   */
  ensure(specs: ProcessSpec[]): void {
    this.owner = true;
    const wanted = new Map(specs.map((s) => [s.name, s]));
    for (const [name, u] of this.units) if (!wanted.has(name)) { this.units.delete(name); this.retire(u); }
    for (const s of specs) {
      const u = this.units.get(s.name);
      if (u && u.info.specHash === specHash(s)) { u.attach(s); continue; }
      const next = new Unit(this.ctx, infoOf(s), s);
      this.units.set(s.name, next);
      if (!u) { next.start(); continue; }
      // stop-then-start: the new one starts only once the old group is gone (ports, files)
      this.retire(u).then(() => { if (this.units.get(s.name) === next) next.start(); });
    }
  }

  /**
   * Until every adopted process with a health check has had its first check (at once after
   * ensure() gave it its spec; at most its check timeout): the status written next then says
   * healthy or not from a check, not "no check yet". Immediate when none is pending.
   */
  async firstChecks(): Promise<void> {
    await Promise.all([...this.units.values()].map((u) => u.firstCheck));
  }

  /**
   * Restart in place for a new release. overlap: start the new ones, wait until all are healthy
   * (health.deadline, or up for minUptime), then stop the old; a new one that never becomes healthy
   * is stopped and the old keep running. No overlap: stop the old first, then start the new; on
   * failure the new ones stay and the caller decides (replace back to the old specs to roll back).
   */
  async replace(oldNames: string[], newSpecs: ProcessSpec[], opts: { overlap: boolean; beforeRetire?: BeforeRetire }): Promise<ReplaceResult> {
    this.owner = true;
    const names = new Set([...oldNames, ...newSpecs.map((s) => s.name)]);
    const olds = [...names].map((n) => this.units.get(n)).filter((u): u is Unit => !!u);
    const news = newSpecs.map((s) => new Unit(this.ctx, infoOf(s), s));
    if (opts.overlap) {
      for (const u of news) { this.others.add(u); u.start(); }
      const ready = await this.waitReady(news);
      // The front moves requests to the new ones (and drains the old) before the old stop;
      // `stopOld` lets it stop them first when they hold the port it must bind (a first deploy).
      let stopped: Promise<void> | null = null;
      const stopOld = () => (stopped ??= Promise.all(olds.map((u) => this.retire(u))).then(() => {}));
      const moved = ready.ok && opts.beforeRetire ? await opts.beforeRetire(stopOld).catch((e): ReplaceResult => ({ ok: false, reason: "FrontFailed", message: String(e instanceof Error ? e.message : e) })) : ready;
      for (const u of news) this.others.delete(u);
      if (!moved.ok) {
        // The old ones are already gone: the new ones stay, the caller rolls back (ensure the old specs).
        if (stopped) { for (const n of names) this.units.delete(n); for (const u of news) this.units.set(u.name, u); this.persist(); return moved; }
        await Promise.all(news.map((u) => u.stop()));
        this.persist();
        return moved;
      }
      for (const n of names) this.units.delete(n);
      for (const u of news) this.units.set(u.name, u);
      await (stopped ?? Promise.all(olds.map((u) => this.retire(u))));
      return ready;
    }
    for (const n of names) this.units.delete(n);
    await Promise.all(olds.map((u) => this.retire(u)));
    for (const u of news) { this.units.set(u.name, u); u.start(); }
    return this.waitReady(news);
  }

  private async waitReady(units: Unit[]): Promise<ReplaceResult> {
    const began = this.deps.clock.now();
    for (;;) {
      const now = this.deps.clock.now();
      if (units.every((u) => u.isHealthy(now))) return { ok: true };
      // A new process that crash-loops, or whose program cannot be started at all, will not
      // become healthy by waiting out its deadline.
      const dead = units.find((u) => u.state === "exited" || (u.state === "failed" && u.spec?.restart === "never")
        || u.reason === "ProcessCrashLooping" || u.reason === "ProcessStartFailed");
      const late = units.find((u) => !u.isHealthy(now) && pastDeadline(began, now, u.spec?.health?.deadline ?? this.readyDeadlineMs));
      const bad = dead ?? late;
      if (bad) {
        const why = bad.health.lastError ?? bad.message ?? (bad.alive ? "no passing check yet" : "not running");
        const within = dead ? "" : ` within ${bad.spec?.health?.deadline ?? this.readyDeadlineMs}ms`;
        return { ok: false, reason: "ProcessNotHealthy",
          message: `${bad.name} at ${bad.info.commit.slice(0, 7)} did not become healthy${within}: ${why}` };
      }
      await Bun.sleep(25);
    }
  }

  private retire(u: Unit): Promise<void> {
    this.others.add(u);
    const p = u.stop().finally(() => { this.others.delete(u); this.stops.delete(p); this.persist(); });
    this.stops.add(p);
    return p;
  }

  /** Wait until every stop that ensure() began has finished. */
  async settled(): Promise<void> {
    while (this.stops.size) await Promise.all([...this.stops]);
  }

  /** Per process, for `agent status`. Read-only. */
  status(): ProcessStatus[] {
    const now = this.deps.clock.now();
    return [...this.units.values(), ...this.others].map((u) => u.view(now)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** True when every named process (default: every wanted one) runs and is healthy. */
  healthy(names?: string[]): boolean {
    const now = this.deps.clock.now();
    const list = names ?? [...this.units.keys()];
    return list.every((n) => this.units.get(n)?.isHealthy(now) ?? false);
  }

  /** Stop everything, gracefully (signal, then SIGKILL after each stop timeout). */
  async stopAll(): Promise<void> {
    const all = [...this.units.values()];
    this.units.clear();
    await Promise.all(all.map((u) => this.retire(u)));
    await this.settled();
    clearInterval(this.rotateTimer);
    this.persist();
  }

  /** Agent shutdown without touching applications: they keep running and the next agent adopts them. */
  detach(): void {
    clearInterval(this.rotateTimer);
    this.persist();
    for (const u of [...this.units.values(), ...this.others]) u.detach();
  }

  private persist(): void {
    if (!this.owner) return;
    const records = [...this.units.values(), ...this.others].map((u) => u.record()).filter((r): r is ProcessRecord => !!r);
    try {
      this.deps.store.update((s) => { s.processes = records; });
    } catch (e) {
      // Never let a full disk turn a running process into a failed start or crash the agent.
      this.deps.log.warn("cannot write state.json: processes keep running, but an agent restarted now would not adopt the newest ones; free space in the state directory",
        { error: errorMessage(e) });
    }
  }

  private rotateLogs(): void {
    const files = new Set([...this.units.values(), ...this.others].flatMap((u) => (u.spec ? [u.spec.logFile] : [])));
    for (const f of files) {
      try {
        if (rotateIfNeeded(f, this.deps.logs, (msg, fields) => this.deps.log.warn(msg, fields))) this.deps.log.debug("log rotated", { file: f });
      } catch (e) {
        this.deps.log.warn("log rotation failed", { file: f, error: String(e) });
      }
    }
  }
}
