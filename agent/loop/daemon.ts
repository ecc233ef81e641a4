// `agent run`: ticks forever (one at a time), sleeps `poll` with jitter between ticks, wakes on
// `agent sync`, cancels a stale preparation when the manifest pins a newer commit meanwhile
// (never a cutover once it began), answers the control socket, and on SIGTERM leaves the
// applications, and a setup step or hook under way, running.
import { Cancel } from "../core/cancel.ts";
import { AgentError, errorMessage } from "../core/errors.ts";
import type { ControlHandlers } from "../control/server.ts";
import type { Status } from "../status/types.ts";
import type { Ports } from "./ports.ts";
import { newMemory, tick, type TickResult } from "./tick.ts";
import { nextPollDelay } from "../source/token.ts";
import { planReport } from "./report.ts";
import { pinnedCommit } from "../plan/release.ts";

export interface DaemonHooks {
  /** Called after every tick (metrics). */
  onTick?(r: TickResult): void;
  /** Good releases on disk, newest first (for `agent rollback` without a commit). */
  goodReleases(): string[];
}

export interface Daemon {
  handlers: ControlHandlers;
  /** Begin ticking; resolves when stop() was called and the current tick finished. */
  start(): Promise<void>;
  stop(): void;
}

const DEFAULT_POLL_MS = 30_000;

/** How soon to tick again after `failures` retryable failures in a row (0: not converged yet, no error). Pure. */
export function retryDelay(pollMs: number, failures: number): number {
  return Math.min(pollMs, 5_000 * 2 ** Math.max(0, failures - 1));
}

export function createDaemon(p: Ports, hooks: DaemonHooks): Daemon {
  const log = p.log.child("loop");
  const mem = newMemory();
  let stopping = false;
  let again = false;                       // a sync arrived during a tick: tick again at once
  let wake: (() => void) | null = null;
  let last: Status | null = null;
  let running: AbortController | null = null;
  let ticksStarted = 0;
  let failures = 0;                        // ticks in a row that failed with a retryable error
  const afterTick: { seq: number; resolve: (r: TickResult | null) => void }[] = [];

  const poke = () => { again = true; wake?.(); };
  const sleep = (ms: number) => new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() { clearTimeout(t); wake = null; resolve(); }
    wake = done;
  });

  // While a tick prepares a release, look at the tip every poll: a newer pinned commit cancels
  // the stale preparation (the next tick prepares the new one). "Newer" means the manifest pins
  // another commit than the one the tick works from: a tip that moved for any other reason, or a
  // local pin (`agent rollback`) being prepared, is no reason to cancel. Once the tick leaves
  // "preparing" (a cutover began: hooks, the switch) the watcher stops: a cutover is finished or
  // rolled back, never cut off halfway.
  async function watch(ac: AbortController, preparing: string | null) {
    const every = mem.manifest?.value.poll ?? DEFAULT_POLL_MS;
    while (!ac.signal.aborted && !stopping) {
      await p.clock.sleep(every, ac.signal);
      if (ac.signal.aborted || !preparing || !mem.manifest) return;
      try {
        const { tip } = await p.source.poll(p.store.get().lastTip);
        if (tip === mem.manifest.tip) continue;
        const env = p.store.get().identity?.environment, role = p.store.get().identity?.role;
        if (!env || !role) continue;
        const m = await p.source.readManifest(tip, env);
        const pinned = m.ok ? pinnedCommit(m.value, role) : null;
        if (ac.signal.aborted) return;      // the cutover began while we looked
        if (pinned && pinned !== pinnedCommit(mem.manifest.value, role)) {
          log.info("a newer commit is pinned; cancelling the stale preparation", { preparing, pinned });
          again = true;
          running?.abort(new Cancel("superseded"));
          return;
        }
      } catch (e) {
        log.debug("watch poll failed", { error: errorMessage(e) });
      }
    }
  }

  async function loop() {
    while (!stopping) {
      again = false;
      const seq = ++ticksStarted;
      const ac = new AbortController();
      running = ac;
      const watchDone = new AbortController();
      let watching = false;
      let r: TickResult | null = null;
      try {
        r = await tick(p, mem, {
          mode: "run", signal: ac.signal,
          onStatus: (s) => {
            last = s;
            if (s.phase === "preparing") { if (!watching) { watching = true; void watch(watchDone, s.desired.commit); } }
            else if (watching) watchDone.abort();
          },
        });
      } catch (e) {
        // tick() keeps its failures as data; a throw here is a bug or a broken host (disk). Never
        // let it end the loop: the processes are still supervised, and the next tick may succeed.
        log.error("tick failed unexpectedly; trying again soon", { error: errorMessage(e) });
      } finally {
        watchDone.abort();
        running = null;
      }
      if (!r) {
        if (stopping) break;
        await sleep(nextPollDelay(Math.min(mem.manifest?.value.poll ?? DEFAULT_POLL_MS, 5_000), p.clock.random()));
        continue;
      }
      last = r.status;
      hooks.onTick?.(r);
      const answered = afterTick.filter((w) => w.seq < seq);
      afterTick.splice(0, afterTick.length, ...afterTick.filter((w) => w.seq >= seq));
      for (const w of answered) w.resolve(r);
      if (r.error) log.warn("tick did not converge", { reason: r.error.reason, error: r.error.message, durationMs: r.status.lastTick.durationMs });
      else log.debug("tick", { phase: r.status.phase, durationMs: r.status.lastTick.durationMs });
      if (stopping) break;
      if (again) continue;
      // Not converged and not blocked for good: look again soon rather than after a full poll,
      // backing off (5 s, 10 s, 20 s, ... up to poll) while it keeps failing, so a fleet does not
      // hammer a git server that is down.
      const poll = mem.manifest?.value.poll ?? DEFAULT_POLL_MS;
      failures = r.error && r.error.retry.kind !== "terminal" ? failures + 1 : 0;
      const soon = !r.converged && r.error?.retry.kind !== "terminal" ? retryDelay(poll, failures) : poll;
      r.status.nextPollAt = new Date(p.clock.now() + soon).toISOString();
      await sleep(nextPollDelay(soon, p.clock.random()));
    }
  }


  const handlers: ControlHandlers = {
    // A dry-run tick with its own memory, beside the loop: git access is serialized in Source.
    // The rollout gate's memory is lent (a copy): the plan sees the bakes this daemon has timed.
    plan: async () => planReport(await tick(p, { ...newMemory(), fleet: mem.fleet && structuredClone(mem.fleet) }, { mode: "run", dryRun: true })),
    status: () => {
      if (!last) throw new AgentError("NoTickYet", "no tick has finished yet; try again in a moment");
      return last;
    },
    sync: async () => { poke(); return { accepted: true, message: running ? "a tick is running; another follows it at once" : "polling now" }; },
    pause: async (o) => {
      p.store.update((s) => { s.paused = true; });
      poke();
      // --drain: paused first (no tick registers the node again), then out of the target groups.
      const drained = o?.drain && p.targets ? await p.targets.drain() : null;
      const failed = drained?.conditions.filter((c) => !c.ready) ?? [];
      if (failed.length) return { accepted: false, message: `paused, but not drained: ${failed.map((c) => `${c.ref}: ${c.message}`).join("; ")}` };
      const extra = drained ? ` ${drained.planned.length ? "Deregistered from the target groups and drained" : "Registered in no target group"}${drained.notices.length ? ` (${drained.notices.join("; ")})` : ""}.` : "";
      return { accepted: true, message: `paused: processes keep running; nothing is deployed until \`agent resume\`.${extra}` };
    },
    resume: async () => {
      p.store.update((s) => { s.paused = false; });
      poke();
      return { accepted: true, message: "resumed: converging again" };
    },
    rollback: async (commit) => {
      const manifestCommit = mem.manifest ? pinnedCommit(mem.manifest.value, p.store.get().identity?.role ?? "") : null;
      if (!manifestCommit) return { ok: false, message: "the agent has not read a manifest yet; try again after the first tick" };
      const current = p.releases.current();
      const target = commit
        ? hooks.goodReleases().find((c) => c.startsWith(commit)) ?? (commit.length === 40 ? commit : null)
        : hooks.goodReleases().find((c) => c !== current) ?? null;
      if (!target) {
        return { ok: false, message: commit ? `no good release matches ${commit} on this node (see agent history); give the full 40-character commit to deploy another one` : "there is no earlier good release on this node to roll back to (see agent history)" };
      }
      if (p.store.get().badCommits.includes(target)) return { ok: false, message: `${target.slice(0, 12)} failed on this node before; pick another (agent history)` };
      p.store.update((s) => { s.localPin = { commit: target, manifestCommit, at: p.clock.now() }; });
      // Answer when a tick that began after the pin has finished: the node runs the target, or why not.
      const done = new Promise<TickResult | null>((resolve) => afterTick.push({ seq: ticksStarted, resolve }));
      poke();
      const r = await done;
      if (!r) return { ok: false, commit: target, message: `the agent stopped before the rollback ran; the pin to ${target.slice(0, 12)} is kept and the next agent runs it` };
      if (r.status.current.commit === target) {
        return { ok: true, commit: target, message: `rolled back: running ${target.slice(0, 12)}${r.converged ? ", healthy" : ` (${r.status.phase})`}; it stays until the manifest pins another commit` };
      }
      return { ok: false, commit: target, message: `the rollback to ${target.slice(0, 12)} did not happen: ${r.error ? `${r.error.reason}: ${r.error.message}` : r.status.phase}; see agent status` };
    },
  };

  return {
    handlers,
    start: () => loop().catch((e) => { log.error("the loop stopped", { error: errorMessage(e) }); }),
    stop() {
      // A stop is not a verdict: a running setup step or hook is left running (the next agent waits for it).
      stopping = true; running?.abort(new Cancel("stop")); wake?.();
      for (const w of afterTick.splice(0)) w.resolve(null);   // no handler waits for a tick that never comes
    },
  };
}
