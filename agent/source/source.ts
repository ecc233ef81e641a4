// The git side of a release: poll the branch tip (one small request), fetch only new objects,
// read the manifest and role files, and check a commit out as releases/<commit>/ atomically.
// One git operation at a time per store (isomorphic-git locks only in-process).
import fs from "node:fs";
import { join } from "node:path";
import git from "isomorphic-git";
import { AgentError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { formatProblem, parseManifest, parseRole, type Parsed } from "../manifest/parse.ts";
import type { Manifest, Role } from "../manifest/schema.ts";
import type { Layout } from "../state/layout.ts";
import { isUsable, markRelease, newRelease, readRelease, writeRelease } from "../state/releases.ts";
import { redact, sourceError } from "./errors.ts";
import { timedHttp, type CountingHttp } from "./http.ts";
import { writeTree } from "./tree.ts";
import { advertCache, type AdvertCache } from "./advert.ts";
import { DEFAULT_HYGIENE, needsRebuild, readStoreStats, recoverStore, storeUsage, swapStore, writeStoreStats, type HygienePolicy } from "./store.ts";

export interface SourceOptions {
  gitdir: string;
  url: string;
  branch: string;
  /**
   * HTTP Basic credentials. `tokenFile` is read for every request to the server (never cached),
   * so a rotated token (GitHub App installation tokens last an hour) is used at once.
   */
  auth?: { username: string; token?: string; tokenFile?: string } | null;
  /** Abort a request after this long without a byte from the server. */
  timeoutMs: number;
  log: Logger;
  allowForcePush: boolean;
  /** trust: set: a tip whose descent from the last tip cannot be checked is refused, never let through. */
  requireDescent?: boolean;
  hygiene?: HygienePolicy;
}

/**
 * A fetch's progress callback: a full collection at the start, middle and end of isomorphic-git's
 * own two phases (the pack received and indexed, its deltas resolved; not the server's "Counting"
 * and "Compressing", which would double the collections for nothing), for packs of 10,000 objects
 * and more. The indexer's inflated objects are garbage at once but Bun collects them late; with
 * the indexer's copies gone (scripts/native-inflate.ts), a first release of 2,000 files peaked at
 * 100 MB with these collections and 109 MB without, and took 10-15% longer with them (6
 * collections; scripts/bench source, docs/benchmarks.md): below 10,000 objects, Bun is left to it.
 */
function collectGarbage(): (p: { phase: string; loaded: number; total: number }) => void {
  let last = "";
  return ({ phase, loaded, total }) => {
    if ((phase !== "Receiving objects" && phase !== "Resolving deltas") || total < 10_000) return;   // a smaller pack: less garbage than a collection costs
    const at = `${phase} ${total ? Math.floor((loaded * 2) / total) : 0}`;
    if (at !== last) { last = at; Bun.gc(true); }
  };
}

/** The local ref that marks the last fetched tip: incremental fetches send it as their `have`. */
const TIP_REF = "refs/heads/agent-tip";

export class Source {
  readonly http: CountingHttp;
  /** What fetches talk through: the v1 ref advertisement is asked for once, then remembered. */
  private readonly fetchHttp: AdvertCache;
  /** The protocol the server last answered the poll with (null: not asked yet). */
  private protocol: 1 | 2 | null = null;
  private opened = false;
  private readonly tokens = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * isomorphic-git's cache of pack indexes and packs, shared by this source's reads, so that a pack
   * is read and checksummed once rather than for every has() and readCommit (six times in a first
   * release). Replaced at every fetch: an old pack is never held while a new one arrives.
   */
  private cache: object = {};

  constructor(private readonly o: SourceOptions) {
    this.http = timedHttp(o.timeoutMs);
    this.fetchHttp = advertCache(this.http);
  }

  /**
   * Ask the server for the branch tip: protocol v2 `ls-refs` for refs/heads/<branch> only (two
   * small requests, whatever else the repository holds), v1's whole advertisement from a server
   * without v2. When it moved, fetch it (only new objects) and refuse a tip that does not descend
   * from `lastTip` (ForcePushRefused) unless allowForcePush. Read-only for the server; idempotent.
   */
  poll(lastTip: string | null): Promise<{ tip: string; moved: boolean }> {
    return this.serial(async () => {
      const ref = `refs/heads/${this.o.branch}`;
      const tip = await this.call("looking at the branch tip", () => this.listTip(ref));
      if (!tip) {
        throw AgentError.terminal("SourceNotFound", `branch ${this.o.branch} does not exist in ${this.safeUrl()}; check branch in the agent's config`);
      }
      if (tip === lastTip && (await this.has(tip))) return { tip, moved: false };
      this.o.log.info("tip moved", { tip, from: lastTip });
      const judge = !!lastTip && lastTip !== tip && !this.o.allowForcePush;
      if (judge && this.o.requireDescent) {
        // With trust: the floor never gives way. Fetch what the check needs; refuse when it cannot be made.
        await this.fetchTip(tip);
        if (!(await this.descendsFetching(tip, lastTip!))) {
          throw AgentError.terminal("ForcePushRefused",
            `the tip of ${this.o.branch} moved to ${tip.slice(0, 12)}, which does not descend from ${lastTip!.slice(0, 12)}, the last tip this node accepted (history was rewritten, or an old branch was pushed back); with trust: the node never moves back: push a new signed commit on top of ${lastTip!.slice(0, 12)} (a rollback is a revert)`);
        }
        await git.writeRef({ fs, gitdir: this.o.gitdir, ref: TIP_REF, value: tip, force: true });
        return { tip, moved: true };
      }
      const canJudge = judge && (await this.has(lastTip!));
      if (judge && !canJudge) this.o.log.warn("last tip not in the object store; cannot check for a force-push this once", { lastTip });
      await this.fetchTip(tip);
      if (canJudge && !(await this.descends(tip, lastTip!))) {
        throw AgentError.terminal("ForcePushRefused",
          `the tip of ${this.o.branch} moved to ${tip.slice(0, 12)}, which does not descend from ${lastTip!.slice(0, 12)} (history was rewritten); push a new commit on top, or set allowForcePush: true in the agent's config`);
      }
      await git.writeRef({ fs, gitdir: this.o.gitdir, ref: TIP_REF, value: tip, force: true });
      return { tip, moved: tip !== lastTip };
    });
  }

  /** manifests/<environment>.yaml at `tip`, parsed; ManifestMissing when the file is absent. */
  readManifest(tip: string, environment: string): Promise<Parsed<Manifest> & { file: string }> {
    return this.serial(async () => {
      const file = `manifests/${environment}.yaml`;
      const text = await this.readText(tip, file);
      if (text === null) {
        throw AgentError.terminal("ManifestMissing",
          `${file} does not exist at ${tip.slice(0, 12)}; add it to the repository (the node's environment is ${environment})`);
      }
      const parsed = parseManifest(text, file);
      return { ...parsed, file };
    });
  }

  /**
   * Make sure `commit` is in the store (a depth-1 fetch of that SHA when missing) and verify it,
   * since a fetch of an unknown SHA succeeds silently. CommitNotFound is terminal for that commit.
   */
  ensureCommit(commit: string): Promise<{ subject: string }> {
    return this.serial(async () => {
      if (!(await this.has(commit))) {
        this.o.log.info("fetching pinned commit", { commit });
        await this.call(`fetching commit ${commit.slice(0, 12)}`, () =>
          this.fetchObjects({ fs, http: this.fetchHttp, gitdir: this.o.gitdir, remote: "origin", ref: commit, depth: 1, singleBranch: true, tags: false, onAuth: this.onAuth(), onProgress: collectGarbage() }));
      }
      try {
        const c = await git.readCommit({ fs, gitdir: this.o.gitdir, oid: commit, cache: this.cache });
        return { subject: c.commit.message.split("\n")[0] ?? "" };
      } catch {
        throw AgentError.terminal("CommitNotFound",
          `commit ${commit} is not in ${this.safeUrl()} (not reachable from any branch); check the manifest's commit: field`);
      }
    });
  }

  /** roles/<role>.yaml at `commit` (which must be in the store): RoleMissing / RoleInvalid. */
  readRole(commit: string, role: string): Promise<Role> {
    return this.serial(async () => {
      const file = `roles/${role}.yaml`;
      const text = await this.readText(commit, file);
      if (text === null) {
        throw AgentError.terminal("RoleMissing", `${file} does not exist at commit ${commit.slice(0, 12)}; add the role "${role}" to the repository or fix the instance's role tag`);
      }
      const parsed = parseRole(text, file);
      if (!parsed.ok) {
        throw AgentError.terminal("RoleInvalid", `${file} at ${commit.slice(0, 12)} is invalid:\n${parsed.problems.map(formatProblem).join("\n")}`);
      }
      return parsed.value;
    });
  }

  /**
   * Check `commit` out as releases/<commit>/ with its record (meta/<commit>/release.json) saying
   * "preparing". Checks out into releases/.<commit>.partial-<pid> and renames, so a half-checked-out
   * tree never looks like a release. A dir that is already usable (ready/active/good) is returned
   * untouched; any other is replaced. DiskFull when the disk fills up; ReleaseRefused (recorded as
   * failed) when the tree has `.agent` at its top.
   */
  checkout(commit: string, l: Layout, opts: { subject?: string | null; now?: number } = {}): Promise<string> {
    return this.serial(async () => {
      const dir = l.release(commit);
      if (isUsable(readRelease(l, commit)) && fs.existsSync(dir)) return dir;
      fs.mkdirSync(l.releases, { recursive: true });
      const partial = join(l.releases, `.${commit}.partial-${process.pid}`);
      fs.rmSync(partial, { recursive: true, force: true });
      try {
        fs.mkdirSync(partial, { recursive: true });
        fs.rmSync(join(this.o.gitdir, "index"), { force: true });   // left by older agents' checkouts
        await writeTree(this.o.gitdir, commit, partial, this.cache);
        const rec = newRelease(l, commit, opts.subject ?? null, opts.now ?? Date.now());
        if (fs.lstatSync(join(partial, ".agent"), { throwIfNoEntry: false })) {
          // Older agents kept their records there; a tree that ships one would pose as them.
          const message = `commit ${commit.slice(0, 12)} has .agent at the top of its tree, a name the agent reserves (it keeps its records in ${l.meta}); remove .agent from the repository and pin a new commit`;
          writeRelease(l, rec);
          markRelease(l, commit, "failed", rec.createdAt, { reason: "ReleaseRefused", message });   // in the history too
          throw AgentError.terminal("ReleaseRefused", message);
        }
        writeRelease(l, rec);
        fs.rmSync(dir, { recursive: true, force: true });
        fs.renameSync(partial, dir);
      } catch (e) {
        fs.rmSync(partial, { recursive: true, force: true });
        throw sourceError(e, `checking out ${commit.slice(0, 12)}`, this.o.url, this.secrets());
      }
      return dir;
    });
  }

  /**
   * Keep the store bounded: when it has grown past the policy, rebuild it from a depth-1 fetch of
   * `tip` and `keep` commits, and swap it in atomically. Returns whether it rebuilt.
   */
  maintain(tip: string, keep: string[] = []): Promise<{ rebuilt: boolean; bytesBefore: number; bytesAfter: number }> {
    return this.serial(async () => {
      const before = storeUsage(this.o.gitdir);
      if (!needsRebuild(before, readStoreStats(this.o.gitdir), this.o.hygiene ?? DEFAULT_HYGIENE)) {
        return { rebuilt: false, bytesBefore: before.bytes, bytesAfter: before.bytes };
      }
      const fresh = `${this.o.gitdir}.new`;
      fs.rmSync(fresh, { recursive: true, force: true });
      await this.init(fresh);
      for (const c of [...new Set([tip, ...keep])]) {
        await this.call("rebuilding the object store", () =>
          this.fetchObjects({ fs, http: this.fetchHttp, gitdir: fresh, remote: "origin", ref: c, depth: 1, singleBranch: true, tags: false, onAuth: this.onAuth(), onProgress: collectGarbage() }));
      }
      await git.writeRef({ fs, gitdir: fresh, ref: TIP_REF, value: tip, force: true });
      writeStoreStats(fresh, { baselineBytes: storeUsage(fresh).bytes, at: Date.now() });
      swapStore(this.o.gitdir);
      this.cache = {};
      const after = storeUsage(this.o.gitdir);
      this.o.log.info("rebuilt object store", { bytesBefore: before.bytes, bytesAfter: after.bytes, packsBefore: before.packs });
      return { rebuilt: true, bytesBefore: before.bytes, bytesAfter: after.bytes };
    });
  }

  /** The raw commit object (no "commit <size>" header): what a signature covers. Fetches it when missing. */
  commitObject(commit: string): Promise<Uint8Array> {
    return this.serial(async () => {
      if (!(await this.has(commit))) await this.fetchCommit(commit);
      const { object } = await git.readObject({ fs, gitdir: this.o.gitdir, oid: commit, format: "content", cache: this.cache });
      return object as Uint8Array;
    });
  }

  /** A file's text at `commit` (which must be in the store), or null when it is absent. Read-only. */
  readFile(commit: string, filepath: string): Promise<string | null> {
    return this.serial(() => this.readText(commit, filepath));
  }

  /**
   * Does `oid` descend from `ancestor`? Fetches `ancestor` and the history between them when the
   * (shallow) store lacks it; false also when the server does not have `ancestor`.
   */
  descendsFrom(oid: string, ancestor: string): Promise<boolean> {
    return this.serial(() => this.descendsFetching(oid, ancestor));
  }

  // ---- internals ----

  /**
   * The oid of `ref` on the server. The first answer to a v2 request is the server's capability
   * advertisement; listServerRefs reads it and, from a server that does not speak v2, falls back
   * to v1 without a word. A v2 listing always goes on to POST `ls-refs`, a v1 one never does: that
   * is how we know which protocol answered, and say so once when it is v1 (every poll then costs
   * the whole advertisement).
   */
  private async listTip(ref: string): Promise<string | undefined> {
    let posted = false;
    const http = { request: (req: Parameters<CountingHttp["request"]>[0]) => { if (req.method === "POST") posted = true; return this.http.request(req); } };
    const before = this.http.bytesIn();
    const refs = await git.listServerRefs({ http, url: this.o.url, protocolVersion: 2, prefix: ref, onAuth: this.onAuth() });
    const spoke = posted ? 2 : 1;
    if (spoke === 1 && this.protocol !== 1) {
      this.o.log.warn("the git server does not speak protocol v2: every poll downloads its whole ref advertisement; enable protocol v2 on the server (git 2.18 or later, with the Git-Protocol header passed through)",
        { bytes: this.http.bytesIn() - before });
    } else if (spoke === 2 && this.protocol === 1) {
      this.o.log.info("the git server speaks protocol v2 again: polls ask for the branch only");
    }
    this.protocol = spoke;
    return refs.find((r) => r.ref === ref)?.oid;
  }

  /** git.fetch, after dropping the read cache (the fetch reads with a cache of its own). */
  private fetchObjects(args: Parameters<typeof git.fetch>[0]) {
    this.cache = {};
    return git.fetch(args);
  }

  private async fetchCommit(commit: string): Promise<void> {
    await this.call(`fetching commit ${commit.slice(0, 12)}`, () =>
      this.fetchObjects({ fs, http: this.http, gitdir: this.o.gitdir, remote: "origin", ref: commit, depth: 1, singleBranch: true, tags: false, onAuth: this.onAuth(), onProgress: collectGarbage() }));
  }

  private async descendsFetching(oid: string, ancestor: string): Promise<boolean> {
    if (oid === ancestor) return true;
    if (!(await this.has(ancestor))) await this.fetchCommit(ancestor);
    if (!(await this.has(ancestor))) return false;     // the server does not have it (rewritten away)
    if (await this.descends(oid, ancestor)) return true;
    // The store is shallow between them: deepen the history of `oid` step by step (only new
    // commits come each time) until the walk reaches `ancestor` or the limit.
    for (const depth of [100, 1_000, 9_000]) {
      await this.call("fetching the history since the last accepted tip", () =>
        this.fetchObjects({ fs, http: this.http, gitdir: this.o.gitdir, remote: "origin", ref: oid, depth, relative: true, singleBranch: true, tags: false, onAuth: this.onAuth(), onProgress: collectGarbage() }));
      if (await this.descends(oid, ancestor)) return true;
      if (!(await this.shallow())) return false;     // the whole history is here: it does not descend
    }
    return false;
  }

  /** Is the store still shallow (history cut off somewhere)? */
  private async shallow(): Promise<boolean> {
    try { return fs.readFileSync(join(this.o.gitdir, "shallow"), "utf8").trim().length > 0; } catch { return false; }
  }

  private async fetchTip(tip: string): Promise<void> {
    if (await this.has(tip)) return;
    const local = await this.localTip();
    const started = this.http.bytesIn();
    if (local) {
      await this.call("fetching the branch tip", () =>
        this.fetchObjects({ fs, http: this.fetchHttp, gitdir: this.o.gitdir, remote: "origin", ref: "agent-tip", remoteRef: tip, singleBranch: true, tags: false, onAuth: this.onAuth(), onProgress: collectGarbage() }));
    }
    if (!(await this.has(tip))) {
      await this.call("fetching the branch tip", () =>
        this.fetchObjects({ fs, http: this.fetchHttp, gitdir: this.o.gitdir, remote: "origin", ref: tip, depth: 1, singleBranch: true, tags: false, onAuth: this.onAuth(), onProgress: collectGarbage() }));
      if (!readStoreStats(this.o.gitdir)) writeStoreStats(this.o.gitdir, { baselineBytes: storeUsage(this.o.gitdir).bytes, at: Date.now() });
    }
    if (!(await this.has(tip))) {
      this.fetchHttp.forget();
      throw new AgentError("SourceFailed", `the server advertised ${tip.slice(0, 12)} but did not send it; the agent retries`);
    }
    this.o.log.info("fetched tip", { tip, incremental: !!local, bytes: this.http.bytesIn() - started });
  }

  /** Does `oid` descend from `ancestor`? Walks parents present in the (shallow) store. */
  private async descends(oid: string, ancestor: string, limit = 10_000): Promise<boolean> {
    const seen = new Set<string>();
    const queue = [oid];
    while (queue.length && seen.size < limit) {
      const c = queue.shift()!;
      if (c === ancestor) return true;
      if (seen.has(c)) continue;
      seen.add(c);
      try { queue.push(...(await git.readCommit({ fs, gitdir: this.o.gitdir, oid: c, cache: this.cache })).commit.parent); } catch {}
    }
    return false;
  }

  private async localTip(): Promise<string | null> {
    try {
      const oid = await git.resolveRef({ fs, gitdir: this.o.gitdir, ref: TIP_REF });
      return (await this.has(oid)) ? oid : null;
    } catch { return null; }
  }

  private async has(oid: string): Promise<boolean> {
    try { await git.readCommit({ fs, gitdir: this.o.gitdir, oid, cache: this.cache }); return true; } catch { return false; }
  }

  private async readText(commit: string, filepath: string): Promise<string | null> {
    try {
      const { blob } = await git.readBlob({ fs, gitdir: this.o.gitdir, oid: commit, filepath, cache: this.cache });
      return new TextDecoder().decode(blob);
    } catch (e) {
      if ((e as { code?: string }).code === "NotFoundError") return null;
      throw sourceError(e, `reading ${filepath}`, this.o.url, this.secrets());
    }
  }

  private async init(gitdir: string): Promise<void> {
    await git.init({ fs, gitdir, bare: true, defaultBranch: "main" });
    await git.addRemote({ fs, gitdir, remote: "origin", url: this.o.url, force: true });
  }

  private async open(): Promise<void> {
    if (this.opened) return;
    for (const f of recoverStore(this.o.gitdir)) this.o.log.warn("repaired object store", { what: f });
    await this.init(this.o.gitdir);
    this.opened = true;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => { await this.open(); return fn(); });
    this.queue = run.catch(() => {});
    return run;
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try { return await fn(); } catch (e) {
      this.fetchHttp.forget();   // a failure may mean the server changed: the next fetch asks it again
      throw sourceError(e, what, this.o.url, this.secrets());
    }
  }

  /** Credentials for the next request; reads the token file now (SourceAuthFailed when it cannot). */
  private onAuth() {
    const a = this.o.auth;
    if (!a) return undefined;
    const password = a.tokenFile ? readToken(a.tokenFile) : a.token;
    if (!password) return undefined;
    this.tokens.add(password);
    return () => ({ username: a.username, password });
  }

  /** Every token this source has sent: none may appear in a message, old or rotated. */
  private secrets() { return [this.o.auth?.token, ...this.tokens]; }
  private safeUrl() { return redact(this.o.url.replace(/\/\/[^@/]*@/, "//"), this.secrets()); }
}

export { nextPollDelay, readToken } from "./token.ts";
import { readToken } from "./token.ts";
