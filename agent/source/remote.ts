// The daemon's Source: the same port, without isomorphic-git in the daemon's process. The poll
// asks for the branch tip over plain HTTP (protocol v2 ls-refs, v1's advertisement from an older
// server); everything that reads or writes the object store (fetch, checkout, reading files and
// commits) goes to `agent _source` (agent/source/child.ts), a child started from the agent's own
// binary on the first such request of a tick; it answers every request of that tick (or deploy)
// and exits IDLE_MS after its last request, or is killed when a request it runs is cancelled. Answers about a commit never change, so the last ones are
// remembered: an idle tick (tip unmoved) starts no child. Any trouble on the fast path (an error,
// a 401, an odd answer) hands the poll to the child, whose errors are the Source's own.
import type { Subprocess } from "bun";
import { AgentError } from "../core/errors.ts";
import { selfCommand } from "../host/self.ts";
import type { Logger } from "../core/log.ts";
import type { Parsed } from "../manifest/parse.ts";
import type { Manifest, Role } from "../manifest/schema.ts";
import type { Layout } from "../state/layout.ts";
import type { ChildAnswer, ChildOptions } from "./child.ts";
import { readToken } from "./token.ts";


const MEMO = 64;
/**
 * A child exits after this long without a request: it serves a tick (or a deploy, and the ticks
 * right after it) and is gone before the next idle poll needs nothing of it; a long setup step does
 * not hold its memory. Closing it at each tick's end instead cost +14% on the deploy e2e tests
 * (one more spawn for each deploy that follows within seconds).
 */
const IDLE_MS = 5_000;
const live = new Set<Session>();
// A stop leaves nothing behind: a child still fetching dies with the daemon.
process.once("exit", () => { for (const s of live) s.kill(); });
/** Pids of the git children running now (tests: a cancelled or stopped one is gone). */
export const runningChildren = (): number[] => [...live].map((s) => s.pid);

export class RemoteSource {
  private readonly memo = new Map<string, unknown>();
  private readonly known = new Set<string>();   // tips the store is known to hold
  private queue: Promise<unknown> = Promise.resolve();
  private protocol: 1 | 2 | null = null;
  private session: Session | null = null;
  private idle: ReturnType<typeof setTimeout> | null = null;
  /** Children started (for tests and the bench). */
  children = 0;
  /** Requests answered by children (for tests and the bench). */
  requests = 0;
  /** The largest peak RSS of a child so far, in MB. */
  peakRssMB = 0;

  constructor(private readonly o: ChildOptions & { log: Logger }) {}

  async poll(lastTip: string | null): Promise<{ tip: string; moved: boolean }> {
    if (lastTip && this.known.has(lastTip)) {
      const tip = await this.listTip().catch(() => undefined);
      if (tip === lastTip) return { tip, moved: false };
    }
    const r = await this.child<{ tip: string; moved: boolean }>("poll", [lastTip]);
    this.known.clear();
    this.known.add(r.tip);
    return r;
  }

  readManifest(tip: string, environment: string) { return this.remembered<Parsed<Manifest> & { file: string }>("readManifest", [tip, environment]); }
  ensureCommit(commit: string, signal?: AbortSignal) { return this.remembered<{ subject: string }>("ensureCommit", [commit], signal); }
  readRole(commit: string, role: string) { return this.remembered<Role>("readRole", [commit, role]); }
  async commitObject(commit: string): Promise<Uint8Array> {
    const v = await this.remembered<{ base64: string }>("commitObject", [commit]);
    return new Uint8Array(Buffer.from(v.base64, "base64"));
  }
  readFile(commit: string, path: string) { return this.remembered<string | null>("readFile", [commit, path]); }
  descendsFrom(oid: string, ancestor: string) { return this.remembered<boolean>("descendsFrom", [oid, ancestor]); }
  maintain(tip: string, keep: string[] = []) { return this.child<{ rebuilt: boolean; bytesBefore: number; bytesAfter: number }>("maintain", [tip, keep]); }
  checkout(commit: string, l: Layout, opts: { subject?: string | null; now?: number } = {}, signal?: AbortSignal) {
    return this.child<string>("checkout", [commit, l.root, opts], signal);
  }

  /** Let the child go now (it would exit IDLE_MS after its last request anyway). */
  release(): void {
    this.queue = this.queue.then(() => this.close());
  }

  // ---- internals ----

  private async remembered<T>(method: string, args: unknown[], signal?: AbortSignal): Promise<T> {
    const key = JSON.stringify([method, ...args]);
    if (this.memo.has(key)) return this.memo.get(key) as T;
    const v = await this.child<T>(method, args, signal);
    if (this.memo.size >= MEMO) this.memo.delete(this.memo.keys().next().value!);
    this.memo.set(key, v);
    return v;
  }

  /** One request at a time per store, as the Source runs one git operation at a time. */
  private child<T>(method: string, args: unknown[], signal?: AbortSignal): Promise<T> {
    const run = this.queue.then(() => this.ask<T>(method, args, signal));
    this.queue = run.catch(() => {});
    return run;
  }

  private close() {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.session?.close();
    this.session = null;
  }

  /** Ask the session's child, starting one on the first request (of a tick, or after the last one exited). */
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
        throw new AgentError("SourceChildFailed", `the git child process (agent _source, pid ${s.pid}) exited during ${method} without an answer; see the log above`);
      }
      this.requests++;
      if (answer.ok) return answer.value as T;
      const e = answer.error;
      throw e.reason && e.retry ? new AgentError(e.reason, e.message, e.retry) : new Error(e.message);
    } finally {
      signal?.removeEventListener("abort", kill);
      if (this.session) {
        this.idle = setTimeout(() => { this.queue = this.queue.then(() => this.close()); }, IDLE_MS);
        this.idle.unref();
      }
    }
  }

  private start(): Session {
    const { log, ...options } = this.o;
    const s = new Session(options);
    this.children++;
    live.add(s);
    const started = Date.now();
    void s.exited.then((maxRSS) => {
      live.delete(s);
      // The child's peak is the release's peak (the daemon's own stays at its idle size).
      const mb = Math.round(maxRSS / 1048576);
      this.peakRssMB = Math.max(this.peakRssMB, mb);
      log.debug("git child done", { pid: s.pid, requests: s.answered, ms: Date.now() - started, maxRssMB: mb });
    });
    return s;
  }

  /** The oid of refs/heads/<branch> over plain HTTP, or undefined when anything is unusual. */
  private async listTip(): Promise<string | undefined> {
    const ref = `refs/heads/${this.o.branch}`;
    const base = this.o.url.replace(/\/+$/, "");
    const headers: Record<string, string> = { "git-protocol": "version=2" };
    const a = this.o.auth;
    const password = a ? (a.tokenFile ? readToken(a.tokenFile) : a.token) : undefined;
    if (a && password) headers.authorization = `Basic ${Buffer.from(`${a.username}:${password}`).toString("base64")}`;
    const get = await fetch(`${base}/info/refs?service=git-upload-pack`, { headers, signal: AbortSignal.timeout(this.o.timeoutMs) });
    if (!get.ok) { await get.arrayBuffer(); return undefined; }
    const lines = pktLines(new Uint8Array(await get.arrayBuffer())).filter((l) => l !== null && !l.startsWith("# service=")) as string[];
    if (lines[0]?.trim() !== "version 2") {
      this.spoke(1);
      for (const l of lines) {
        const [oid, name] = l.split("\0")[0]!.trim().split(" ");
        if (name === ref && /^[0-9a-f]{40}$/.test(oid!)) return oid;
      }
      return undefined;
    }
    const body = concat([pkt("command=ls-refs\n"), enc.encode("0001"), pkt(`ref-prefix ${ref}\n`), enc.encode("0000")]);
    const post = await fetch(`${base}/git-upload-pack`, {
      method: "POST", body, signal: AbortSignal.timeout(this.o.timeoutMs),
      headers: { ...headers, "content-type": "application/x-git-upload-pack-request", accept: "application/x-git-upload-pack-result" },
    });
    if (!post.ok) { await post.arrayBuffer(); return undefined; }
    this.spoke(2);
    for (const l of pktLines(new Uint8Array(await post.arrayBuffer()))) {
      const [oid, name] = (l ?? "").trim().split(" ");
      if (name === ref && /^[0-9a-f]{40}$/.test(oid!)) return oid;
    }
    return undefined;
  }

  private spoke(p: 1 | 2) {
    if (p === 1 && this.protocol === 2) this.o.log.warn("the git server does not speak protocol v2: every poll downloads its whole ref advertisement; enable protocol v2 on the server (git 2.18 or later, with the Git-Protocol header passed through)");
    else if (p === 2 && this.protocol === 1) this.o.log.info("the git server speaks protocol v2 again: polls ask for the branch only");
    this.protocol = p;
  }
}

/**
 * One `agent _source` child and its pipes. It holds the daemon's event loop only while a request
 * is out (a one-shot command exits without waiting for it); it exits when its stdin closes.
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

  constructor(options: ChildOptions) {
    this.proc = Bun.spawn([...selfCommand(), "_source"], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
    this.proc.stdin.write(JSON.stringify({ options }) + "\n");
    void this.proc.stdin.flush();
    this.hold(false);
    this.exited = this.proc.exited.then(() => { this.alive = false; return this.proc.resourceUsage()?.maxRSS ?? 0; });
  }

  get pid() { return this.proc.pid; }

  /** The answer to one request, or null when the child exited first. */
  async request(method: string, args: unknown[]): Promise<ChildAnswer | null> {
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
          const answer = JSON.parse(line) as ChildAnswer;
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

const enc = new TextEncoder();
const pkt = (s: string) => enc.encode((s.length + 4).toString(16).padStart(4, "0") + s);

/** pkt-lines as text; null for a flush/delim packet. */
function pktLines(bytes: Uint8Array): (string | null)[] {
  const dec = new TextDecoder();
  const out: (string | null)[] = [];
  let at = 0;
  while (at + 4 <= bytes.length) {
    const n = parseInt(dec.decode(bytes.subarray(at, at + 4)), 16);
    if (Number.isNaN(n)) break;
    if (n < 4) { out.push(null); at += 4; continue; }
    out.push(dec.decode(bytes.subarray(at + 4, at + n)));
    at += n;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.byteLength; }
  return out;
}
