// One supervised process instance: spawn it in its own process group with its log as an O_APPEND
// fd, notice its exit (our child: onExit; adopted: polling /proc), restart it with backoff, run
// its health checks, stop its whole group. Decisions come from backoff.ts and health-policy.ts.
import { closeSync, constants, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import type { Subprocess } from "bun";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import { errorMessage } from "../core/errors.ts";
import { formatDuration } from "../core/duration.ts";
import type { ProcessRecord } from "../state/store.ts";
import type { ProcessStatus } from "../status/types.ts";
import { decideRestart, exitFailed, type BackoffPolicy, type BackoffState, type ExitFacts } from "./backoff.ts";
import { initialHealth, livenessFailed, recordCheck, upLongEnough, type HealthState } from "./health-policy.ts";
import { explainUnreachable } from "../host/runtime.ts";
import { groupMembers, isSameProcess, ownerOf, readStat, signalGroup } from "../host/proc.ts";
import { probe } from "./probe.ts";
import { processMarkers } from "./marker.ts";
import type { ProcessSpec, SupervisorEvent } from "./types.ts";

export interface UnitContext {
  clock: Clock;
  log: Logger;
  backoff: BackoffPolicy;
  pollMs: number;
  /** Marks every start's environment (marker.ts), so the next agent finds it without a record. */
  stateDir?: string;
  persist(): void;
  emit(e: SupervisorEvent): void;
}

type Info = Pick<ProcessRecord, "name" | "process" | "instance" | "commit" | "releaseDir" | "port" | "specHash">;
const short = (c: string) => c.slice(0, 7);

/** The first readiness check of a new process comes this soon, then doubles up to the interval. */
const READINESS_FIRST_CHECK_MS = 250;

/**
 * When the first check of a process runs: a started one needs a moment to listen; an adopted one
 * already runs (and reads as not healthy until a check passes), so it is checked at once.
 */
export function firstCheckMs(intervalMs: number, adopted: boolean): number {
  return adopted ? 0 : Math.min(READINESS_FIRST_CHECK_MS, intervalMs);
}

export class Unit {
  state: ProcessStatus["state"] = "stopped";
  pid: number | null = null;
  pgid: number | null = null;
  startTime = 0;
  startedAt: number | null = null;
  restarts = 0;
  lastExit: ProcessStatus["lastExit"] = null;
  reason: string | null = null;
  message: string | null = null;
  backoff: BackoffState = { quickExits: 0 };
  health: HealthState = initialHealth();
  adopted = false;
  private unrecorded = false;
  private child: Subprocess | null = null;
  private stopping = false;   // a stop is in progress: its exit is not a crash
  private retired = false;    // stopped for good: nothing may start it again
  private detached = false;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  /** Settles once an adopted process's first health check has run (or it is gone): see firstCheck. */
  private firstCheckDone: (() => void) | null = null;
  /** An adopted process with a health check reads as not healthy until this settles. */
  firstCheck: Promise<void> = Promise.resolve();

  constructor(private ctx: UnitContext, public info: Info, public spec: ProcessSpec | null) {}

  get name() { return this.info.name; }
  get alive() { return this.pid !== null; }

  /** Start the process now. A binary that cannot be started is a failed run: backoff continues. */
  start(): void {
    const spec = this.spec;
    if (!spec || this.detached || this.retired || this.stopping || this.pid !== null) return;
    const now = this.ctx.clock.now();
    if (spec.secrets?.pending) {
      // Only the versions are known (an agent restarted while SSM was unreachable): never start without the values.
      const message = `cannot start ${spec.name}: the values of its secrets (${spec.secrets.names.join(", ")}) are not fetched yet; retried`;
      this.afterExit({ startedAt: now, exitedAt: now, code: null, signal: null, requested: false }, "SecretsUnavailable", message);
      return;
    }
    let fd: number | undefined;
    try {
      mkdirSync(dirname(spec.logFile), { recursive: true });
      fd = openSync(spec.logFile, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640);   // never through a link
      const child = Bun.spawn(spec.argv, {
        cwd: spec.cwd,
        env: { ...spec.env, AGENT_COMMIT: spec.commit, AGENT_RELEASE: spec.releaseDir,
          ...(this.ctx.stateDir ? processMarkers(this.ctx.stateDir, spec.name, this.info.specHash ?? "") : {}) },
        stdin: "ignore", stdout: fd, stderr: fd,
        detached: true,            // setsid(): its own group, so a stop reaches grandchildren
        uid: spec.user?.uid, gid: spec.user?.gid,
        onExit: (p) => this.exited(p.pid, p.exitCode, p.signalCode == null ? null : String(p.signalCode)),
      });
      this.child = child;
      this.adopted = false;
      this.pid = this.pgid = child.pid;
      this.startTime = readStat(child.pid)?.startTime ?? 0;
      this.startedAt = now;
      this.health = initialHealth();
      this.state = "starting";
      this.ctx.log.info("started", { process: spec.name, pid: child.pid, commit: short(spec.commit) });
      this.ctx.emit({ kind: "start", name: spec.name, pid: child.pid, commit: spec.commit, at: now });
      // Test hook, inert unless set: die here as an agent SIGKILLed between spawn and record would.
      if (process.env.AGENT_TEST_DIE_AFTER_SPAWN === spec.name) process.kill(process.pid, "SIGKILL");
      this.ctx.persist();
      this.watchHealth();
    } catch (e) {
      const denied = spec.user && (e as { code?: string }).code === "EACCES" ? explainUnreachable(spec.argv[0]!, spec.user, spec.env.PATH, spec.cwd) : null;
      const message = `cannot start ${spec.name} (${spec.argv[0]}): ${errorMessage(e)}; ${denied ?? "check the role's run: line and that the release has the file"}`;
      this.ctx.log.error("start failed", { process: spec.name, error: errorMessage(e) });
      this.ctx.emit({ kind: "start-failed", name: spec.name, message, at: now });
      this.afterExit({ startedAt: now, exitedAt: now, code: null, signal: null, requested: false }, "ProcessStartFailed", message);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /**
   * Take over a process a previous agent started (already checked: same pid and start time).
   * `unrecorded`: found by its environment marker only, which any local user could forge; it is
   * kept only when it runs as the user its spec names (checked in attach()).
   */
  adopt(r: ProcessRecord, opts: { unrecorded?: boolean } = {}): void {
    this.adopted = true;
    this.unrecorded = opts.unrecorded ?? false;
    this.pid = r.pid; this.pgid = r.pgid; this.startTime = r.startTime; this.startedAt = r.startedAt;
    this.restarts = r.restarts;
    this.state = "running";
    this.every(this.ctx.pollMs, () => { if (this.pid !== null && !isSameProcess(this.pid, this.startTime)) this.exited(this.pid, null, null); });
  }

  /**
   * Hand a unit its current spec (same fingerprint: nothing restarts; stop, health and restart
   * settings apply from now on). An adopted unit that died before it had a spec starts now.
   */
  attach(spec: ProcessSpec): void {
    const first = this.spec === null;
    this.spec = spec;
    if (!first) return;
    const uid = this.unrecorded && this.pid !== null ? ownerOf(this.pid)?.real ?? null : null;
    if (uid !== null && uid !== (spec.user?.uid ?? process.getuid?.())) {
      // Not a process of ours: forget it without a signal, and start the real one.
      this.ctx.log.warn("a process carries this agent's marker but runs as another user; left alone", { process: this.name, pid: this.pid, uid });
      this.clearTimers();
      this.pid = this.pgid = null; this.startedAt = null; this.adopted = false;
      this.state = "stopped";
      this.start();
      return;
    }
    if (this.pid !== null) this.watchHealth();
    else if (this.adopted && this.state === "exited" && spec.restart !== "never") { this.restarts++; this.start(); }
  }

  private exited(pid: number, code: number | null, signal: string | null): void {
    if (this.detached || pid !== this.pid) return;
    const now = this.ctx.clock.now();
    const startedAt = this.startedAt ?? now;
    this.lastExit = { code, signal, at: new Date(now).toISOString() };
    this.pid = null; this.child = null; this.startedAt = null;
    this.clearTimers();
    this.ctx.log[this.stopping ? "info" : "warn"]("exited", { process: this.name, pid, code, signal, ranMs: now - startedAt });
    this.ctx.emit({ kind: "exit", name: this.name, pid, code, signal, requested: this.stopping, at: now });
    this.ctx.persist();
    if (this.stopping) return;
    // Like systemd's control-group mode: what the leader left behind in its group dies with it,
    // so a restart never finds the old grandchildren holding its port.
    if (this.pgid !== null && groupMembers(this.pgid).length > 0) signalGroup(this.pgid, "SIGKILL");
    this.pgid = null;
    const how = signal ? `was killed by ${signal}` : code === null ? "is gone" : `exited with code ${code}`;
    this.afterExit({ startedAt, exitedAt: now, code, signal, requested: false },
      exitFailed({ code, signal }) ? "ProcessExited" : "ProcessCompleted", `${how} after ${formatDuration(now - startedAt)}`);
  }

  /** The restart policy's answer to an exit: a delayed start, or a final state. */
  private afterExit(exit: ExitFacts, reason: string, what: string): void {
    if (!this.spec) { this.state = "exited"; this.reason = reason; this.message = what; return; }
    const d = decideRestart(this.ctx.backoff, this.backoff, this.spec.restart, exit);
    this.backoff = d.state;
    if (!d.restart) {
      this.state = exitFailed(exit) || reason === "ProcessStartFailed" ? "failed" : "exited";
      this.reason = reason; this.message = `${what}; restart: ${this.spec.restart}, not restarted`;
      return;
    }
    this.state = reason === "ProcessStartFailed" ? "failed" : "backoff";
    this.reason = d.crashLooping && reason !== "ProcessStartFailed" ? "ProcessCrashLooping" : reason;
    const loop = d.crashLooping ? ` (${d.state.quickExits} quick exits in a row)` : "";
    this.message = `${what}${loop}; next start in ${formatDuration(d.delayMs)}`;
    this.after(d.delayMs, () => { this.restarts++; this.start(); });
  }

  private watchHealth(): void {
    const spec = this.spec;
    if (!spec) return;
    const pid = this.pid;
    if (!spec.health) {
      this.after(spec.minUptimeMs, () => { if (this.pid === pid) this.becameHealthy(); });
      return;
    }
    const h = spec.health;
    // Until it is first healthy, look sooner (250 ms, doubling up to the interval): a cutover
    // should not wait a whole interval for a process that is already up.
    let wait = firstCheckMs(h.interval, this.adopted);
    if (this.adopted) this.firstCheck = new Promise((resolve) => { this.firstCheckDone = resolve; });
    const check = async () => {
      const r = await probe(h, { port: spec.port, cwd: spec.releaseDir, env: spec.env, user: spec.user });
      if (this.pid !== pid || this.stopping || this.detached) return this.settleFirstCheck();
      const was = this.health;
      this.health = recordCheck(h, was, r.ok, r.error);
      this.settleFirstCheck();
      if (this.health.healthy && !was.healthy) this.becameHealthy();
      if (livenessFailed(this.health) && was.healthy) return void this.restartUnhealthy(r.error);
      wait = this.health.everHealthy ? h.interval : Math.min(Math.max(wait * 2, READINESS_FIRST_CHECK_MS), h.interval);
      this.after(wait, check);
    };
    this.after(wait, check);
  }

  private becameHealthy(): void {
    if (this.state === "starting") this.state = "running";
    this.reason = null; this.message = null;
    this.ctx.emit({ kind: "healthy", name: this.name, pid: this.pid!, at: this.ctx.clock.now() });
  }

  /** Liveness failed: stop the group (graceful, then SIGKILL) and let the restart policy decide. */
  private async restartUnhealthy(error: string | null): Promise<void> {
    const spec = this.spec!;
    const startedAt = this.startedAt ?? this.ctx.clock.now();
    this.ctx.log.warn("unhealthy, restarting", { process: this.name, pid: this.pid, error });
    this.ctx.emit({ kind: "unhealthy", name: this.name, pid: this.pid!, at: this.ctx.clock.now() });
    this.stopping = true;
    await this.killGroup(spec.stop.signal as NodeJS.Signals, spec.stop.timeoutMs);
    if (this.detached || this.retired) return;   // stop() came meanwhile: it owns the outcome
    this.stopping = false;
    this.afterExit({ startedAt, exitedAt: this.ctx.clock.now(), code: null, signal: null, requested: false, unhealthy: true },
      "ProcessUnhealthy", `failed its health check${error ? ` (${error})` : ""}`);
  }

  /** Stop for good: the configured signal to the group, SIGKILL after the timeout. Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.retired = true;
    this.clearTimers();
    if (this.pid !== null || this.pgid !== null) {
      this.state = "stopping";
      const sig = (this.spec?.stop.signal ?? "SIGTERM") as NodeJS.Signals;
      await this.killGroup(sig, this.spec?.stop.timeoutMs ?? 30_000);
    }
    this.state = "stopped"; this.reason = null; this.message = null;
  }

  /**
   * Signal the group and wait until the leader and every member are gone; SIGKILL the group after
   * timeoutMs. An adopted leader is signalled only while its start time still matches; a group with
   * live members is ours (Linux never hands out a pid still used as a process group id).
   */
  private async killGroup(sig: NodeJS.Signals, timeoutMs: number): Promise<void> {
    const pgid = this.pgid;
    if (pgid === null) return;
    const leaderAlive = () => this.pid !== null && isSameProcess(this.pid, this.startTime);
    const anyAlive = () => leaderAlive() || groupMembers(pgid).length > 0;
    if (!anyAlive()) return this.reapLeader();
    signalGroup(pgid, sig);
    const deadline = Date.now() + timeoutMs;
    while (anyAlive() && Date.now() < deadline) await Bun.sleep(25);
    if (anyAlive()) {
      this.ctx.log.warn("did not stop in time, killing the group", { process: this.name, pgid, signal: sig, timeoutMs });
      signalGroup(pgid, "SIGKILL");
      const hard = Date.now() + 5000;
      while (anyAlive() && Date.now() < hard) await Bun.sleep(10);
    }
    await this.reapLeader();
  }

  private async reapLeader(): Promise<void> {
    const child = this.child, pid = this.pid;
    // Bun may resolve `exited` before it calls onExit: record the exit here (exited() is idempotent).
    if (child) await child.exited;
    if (pid !== null) this.exited(pid, child ? child.exitCode : null, child?.signalCode == null ? null : String(child.signalCode));
    this.pgid = null;
  }

  /** Forget the process without signalling it (agent shutdown): it keeps running for the next agent. */
  detach(): void {
    this.detached = true;
    this.clearTimers();
    this.child?.unref();
  }

  isHealthy(now: number): boolean {
    if (this.pid === null) return false;
    if (!this.spec) return this.adopted;
    return this.spec.health ? this.health.healthy : this.adopted || upLongEnough(this.startedAt, now, this.spec.minUptimeMs);
  }

  record(): ProcessRecord | null {
    if (this.pid === null || this.pgid === null || this.startedAt === null) return null;
    return { ...this.info, pid: this.pid, pgid: this.pgid, startTime: this.startTime, startedAt: this.startedAt, restarts: this.restarts };
  }

  view(now: number): ProcessStatus {
    const healthy = this.isHealthy(now);
    return {
      // Up minUptime is healthy the moment it is true, before the timer that says "running" fires.
      name: this.name, state: this.state === "starting" && healthy ? "running" : this.state, pid: this.pid, commit: this.info.commit, restarts: this.restarts,
      healthy,
      uptimeMs: this.startedAt === null ? undefined : now - this.startedAt,
      lastExit: this.lastExit,
      ...(this.reason ? { reason: this.reason } : {}),
      ...(this.message ? { message: this.message } : {}),
    };
  }

  private after(ms: number, fn: () => void): void {
    const t = setTimeout(() => { this.timers.delete(t); if (!this.detached) fn(); }, ms);
    this.timers.add(t);
  }

  private every(ms: number, fn: () => void): void {
    const tick = () => { fn(); if (this.adopted && this.pid !== null) this.after(ms, tick); };
    this.after(ms, tick);
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.settleFirstCheck();
  }

  private settleFirstCheck(): void {
    const done = this.firstCheckDone;
    this.firstCheckDone = null;
    done?.();
  }
}
