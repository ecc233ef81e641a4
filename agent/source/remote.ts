// The daemon's Source: the same port, without isomorphic-git in the daemon's process. The poll
// asks for the branch tip over plain HTTP (protocol v2 ls-refs, v1's advertisement from an older
// server); everything that reads or writes the object store (fetch, checkout, reading files and
// commits) goes to `agent _source` (agent/source/child.ts), a child started from the agent's own
// binary on the first such request of a tick; it answers every request of that tick (or deploy)
// and exits IDLE_MS after its last request, or is killed when a request it runs is cancelled. Answers about a commit never change, so the last ones are
// remembered: an idle tick (tip unmoved) starts no child. Any trouble on the fast path (an error,
// a 401, an odd answer) hands the poll to the child, whose errors are the Source's own.
import { ChildWorker, runningWorkers } from "../host/worker.ts";
import type { Logger } from "../core/log.ts";
import type { Parsed } from "../manifest/parse.ts";
import type { Manifest, Role } from "../manifest/schema.ts";
import type { Layout } from "../state/layout.ts";
import type { ChildOptions } from "./child.ts";
import { readToken } from "./token.ts";

const MEMO = 64;
/** Pids of the git children running now (tests: a cancelled or stopped one is gone). */
export const runningChildren = (): number[] => runningWorkers("_source");

export class RemoteSource {
  private readonly memo = new Map<string, unknown>();
  private readonly known = new Set<string>();   // tips the store is known to hold
  private protocol: 1 | 2 | null = null;
  private readonly worker: ChildWorker;
  /** Children started (for tests and the bench). */
  get children() { return this.worker.children; }
  /** Requests answered by children (for tests and the bench). */
  get requests() { return this.worker.requests; }
  /** The largest peak RSS of a child so far, in MB. */
  get peakRssMB() { return this.worker.peakRssMB; }

  constructor(private readonly o: ChildOptions & { log: Logger }) {
    const { log, ...options } = o;
    this.worker = new ChildWorker({ command: "_source", what: "the git child process", failedReason: "SourceChildFailed", options, log });
  }

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
  release(): void { this.worker.release(); }

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
    return this.worker.call<T>(method, args, signal);
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
