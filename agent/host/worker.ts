// A short-lived child of the agent's own binary that runs requests for the daemon, so that a
// library the daemon needs only now and then (isomorphic-git for `agent _source`, the EC2 SDK
// client for `agent _ec2`) never stays in the daemon's RSS. Both sides are here:
// - the daemon's `ChildWorker`: starts `agent <command>` on its first request, writes the options as the
//   first line and then one request a line, {id, method, args}, one at a time; the child exits
//   IDLE_MS after the last request (its stdin is closed), or is killed when a request it runs is
//   cancelled, or when the daemon exits;
// - the child's `serveRequests` (host/serve.ts, apart so that the daemon and the children share no
//   chunk of the build): reads those lines, answers each with {id, ok: true, value} or
//   {id, ok: false, error: {reason, message, retry}}, and exits when stdin closes. Logs go to stderr.
// An AgentError crosses the pipe with its reason and retry; any other error as its message.
import type { Subprocess } from "bun";
import { AgentError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { selfCommand } from "./self.ts";

export type WorkerError = { reason: string | null; message: string; retry: AgentError["retry"] | null };
export type WorkerAnswer = { id: number } & ({ ok: true; value: unknown } | { ok: false; error: WorkerError });

/**
 * A child exits after this long without a request: it serves a tick (or a deploy, and the ticks
 * right after it) and is gone before the next idle poll needs nothing of it. Closing it at each
 * tick's end instead cost +14% on the deploy e2e tests (one more spawn for each deploy that follows
 * within seconds).
 */
export const IDLE_MS = 5_000;

const live = new Set<Session>();
// A stop leaves nothing behind: a child still working dies with the daemon.
process.once("exit", () => { for (const s of live) s.kill(); });
/** Pids of the children of one command running now (tests: a cancelled or stopped one is gone). */
export const runningWorkers = (command: string): number[] => [...live].filter((s) => s.command === command).map((s) => s.pid);

export interface WorkerOptions {
  /** The hidden command the child runs (`_source`, `_ec2`). */
  command: string;
  /** What the child is called in errors ("the git child process"), and the reason when it dies mid-request. */
  what: string;
  failedReason: string;
  /** The first line the child reads (its options), as JSON. */
  options: unknown;
  log: Logger;
  idleMs?: number;
}

export class ChildWorker {
  private queue: Promise<unknown> = Promise.resolve();
  private session: Session | null = null;
  private idle: ReturnType<typeof setTimeout> | null = null;
  /** Children started (for tests and the bench). */
  children = 0;
  /** Requests answered (for tests and the bench). */
  requests = 0;
  /** The largest peak RSS of a child so far, in MB. */
  peakRssMB = 0;

  constructor(private readonly o: WorkerOptions) {}

  /** One request at a time per worker. */
  call<T>(method: string, args: unknown[], signal?: AbortSignal): Promise<T> {
    const run = this.queue.then(() => this.ask<T>(method, args, signal));
    this.queue = run.catch(() => {});
    return run;
  }

  /** Let the child go now (it would exit idleMs after its last request anyway). */
  release(): void {
    this.queue = this.queue.then(() => this.close());
  }

  private close() {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.session?.close();
    this.session = null;
  }

  private async ask<T>(method: string, args: unknown[], signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    if (!this.session?.alive) this.session = this.start();
    const s = this.session;
    const kill = () => s.kill();
    signal?.addEventListener("abort", kill, { once: true });
    try {
      const answer = await s.request(method, args);
      signal?.throwIfAborted();
      if (!answer) {
        if (this.session === s) this.session = null;
        throw new AgentError(this.o.failedReason, `${this.o.what} (agent ${this.o.command}, pid ${s.pid}) exited during ${method} without an answer; see the log above`);
      }
      this.requests++;
      if (answer.ok) return answer.value as T;
      const e = answer.error;
      throw e.reason && e.retry ? new AgentError(e.reason, e.message, e.retry) : new Error(e.message);
    } finally {
      signal?.removeEventListener("abort", kill);
      if (this.session) {
        this.idle = setTimeout(() => { this.queue = this.queue.then(() => this.close()); }, this.o.idleMs ?? IDLE_MS);
        this.idle.unref();
      }
    }
  }

  private start(): Session {
    const s = new Session(this.o.command, this.o.options);
    this.children++;
    live.add(s);
    const started = Date.now();
    void s.exited.then((maxRSS) => {
      live.delete(s);
      // The child's peak is the work's peak (the daemon's own stays at its idle size).
      const mb = Math.round(maxRSS / 1048576);
      this.peakRssMB = Math.max(this.peakRssMB, mb);
      this.o.log.debug("child done", { command: this.o.command, pid: s.pid, requests: s.answered, ms: Date.now() - started, maxRssMB: mb });
    });
    return s;
  }
}

/**
 * One child and its pipes. It holds the daemon's event loop only while a request is out (a
 * one-shot command exits without waiting for it); it exits when its stdin closes.
 */
class Session {
  private readonly proc: Subprocess<"pipe", "pipe", "inherit">;
  private buf = "";
  private readonly dec = new TextDecoder();
  private next = 1;
  alive = true;
  answered = 0;
  /** Resolves with the child's peak RSS in bytes when it has exited. */
  readonly exited: Promise<number>;

  constructor(readonly command: string, options: unknown) {
    // process.env as it is now (the daemon sets the IMDS endpoint the SDK reads after it started).
    this.proc = Bun.spawn([...selfCommand(), command], { stdin: "pipe", stdout: "pipe", stderr: "inherit", env: { ...process.env } });
    this.proc.stdin.write(JSON.stringify({ options }) + "\n");
    void this.proc.stdin.flush();
    this.hold(false);
    this.exited = this.proc.exited.then(() => { this.alive = false; return this.proc.resourceUsage()?.maxRSS ?? 0; });
  }

  get pid() { return this.proc.pid; }

  /** The answer to one request, or null when the child exited first. */
  async request(method: string, args: unknown[]): Promise<WorkerAnswer | null> {
    const id = this.next++;
    this.hold(true);
    const reader = this.proc.stdout.getReader();
    try {
      this.proc.stdin.write(JSON.stringify({ id, method, args }) + "\n");
      await this.proc.stdin.flush();
      for (;;) {
        const nl = this.buf.indexOf("\n");
        if (nl >= 0) {
          const line = this.buf.slice(0, nl);
          this.buf = this.buf.slice(nl + 1);
          const answer = JSON.parse(line) as WorkerAnswer;
          if (answer.id === id) { this.answered++; return answer; }
          continue;
        }
        const { value, done } = await reader.read();
        if (done) return null;
        this.buf += this.dec.decode(value, { stream: true });
      }
    } catch {
      return null;   // the pipe broke: the child is gone
    } finally {
      reader.releaseLock();
      this.hold(false);
    }
  }

  close() { try { this.proc.stdin.end(); } catch { /* already gone */ } }
  kill() { this.proc.kill("SIGKILL"); }

  private hold(on: boolean) {
    if (on) { this.proc.ref(); this.proc.stdin.ref(); } else { this.proc.unref(); this.proc.stdin.unref(); }
  }
}
