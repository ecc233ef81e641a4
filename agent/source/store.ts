// The bare object store in <stateDir>/repo: recovery after a crash (stale locks, half-written
// packs, an interrupted rebuild) and hygiene (rebuild from a depth-1 fetch when it has grown).
// Never touches anything outside the store and its `.new`/`.old` siblings.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../host/files.ts";

export interface StoreStats {
  /** Bytes under objects/ right after the last fresh (depth-1) fetch. */
  baselineBytes: number;
  at: number;
}

export interface StoreUsage { bytes: number; packs: number }

/**
 * Make a store that a killed agent left behind usable again. Idempotent; safe on a healthy store.
 * Finishes or undoes an interrupted rebuild, removes lock files, packs without an index (and
 * indexes without a pack), and the shared checkout index, which a kill can leave truncated.
 */
export function recoverStore(gitdir: string): string[] {
  const fixed: string[] = [];
  const rm = (p: string, why: string) => { rmSync(p, { recursive: true, force: true }); fixed.push(`${why}: ${p}`); };
  if (!existsSync(gitdir) && existsSync(`${gitdir}.old`)) { renameSync(`${gitdir}.old`, gitdir); fixed.push("restored store from interrupted rebuild"); }
  if (existsSync(`${gitdir}.new`)) rm(`${gitdir}.new`, "removed unfinished rebuild");
  if (existsSync(`${gitdir}.old`)) rm(`${gitdir}.old`, "removed replaced store");
  if (!existsSync(gitdir)) return fixed;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) { if (e.name !== "objects") walk(p); }
      else if (e.name.endsWith(".lock")) rm(p, "removed stale lock");
    }
  };
  walk(gitdir);
  const packDir = join(gitdir, "objects", "pack");
  if (existsSync(packDir)) {
    const names = new Set(readdirSync(packDir));
    for (const n of names) {
      const base = n.replace(/\.(pack|idx)$/, "");
      if (n.endsWith(".pack") && !names.has(`${base}.idx`)) rm(join(packDir, n), "removed pack without index");
      else if (n.endsWith(".idx") && !names.has(`${base}.pack`)) rm(join(packDir, n), "removed index without pack");
      else if (!n.endsWith(".pack") && !n.endsWith(".idx")) rm(join(packDir, n), "removed temporary pack file");
    }
  }
  if (existsSync(join(gitdir, "index"))) { unlinkSync(join(gitdir, "index")); }
  return fixed;
}

/** Bytes and pack files under objects/. Read-only. */
export function storeUsage(gitdir: string): StoreUsage {
  let bytes = 0, packs = 0;
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else { bytes += statSync(p).size; if (e.name.endsWith(".pack")) packs++; }
    }
  };
  walk(join(gitdir, "objects"));
  return { bytes, packs };
}

const statsFile = (gitdir: string) => join(gitdir, "agent-store.json");

export function readStoreStats(gitdir: string): StoreStats | null {
  try { return JSON.parse(readFileSync(statsFile(gitdir), "utf8")) as StoreStats; } catch { return null; }
}

export function writeStoreStats(gitdir: string, stats: StoreStats): void {
  writeFileAtomic(statsFile(gitdir), JSON.stringify(stats) + "\n");
}

export interface HygienePolicy {
  /** Rebuild when objects/ exceeds this multiple of the size after a fresh fetch. */
  growthFactor: number;
  /** ...and has grown by at least this many bytes (tiny repos do not churn). */
  minGrowthBytes: number;
  /** Rebuild when this many pack files have accumulated (each lookup scans every index). */
  maxPacks: number;
}

export const DEFAULT_HYGIENE: HygienePolicy = { growthFactor: 3, minGrowthBytes: 8 * 1024 * 1024, maxPacks: 50 };

/** Pure: does a store of this usage need a rebuild? */
export function needsRebuild(usage: StoreUsage, stats: StoreStats | null, policy: HygienePolicy): boolean {
  if (usage.packs > policy.maxPacks) return true;
  if (!stats) return false;
  return usage.bytes > stats.baselineBytes * policy.growthFactor && usage.bytes - stats.baselineBytes > policy.minGrowthBytes;
}

/** Swap a freshly built store (`${gitdir}.new`) into place; recoverStore() completes it after a kill. */
export function swapStore(gitdir: string): void {
  rmSync(`${gitdir}.old`, { recursive: true, force: true });
  if (existsSync(gitdir)) renameSync(gitdir, `${gitdir}.old`);
  renameSync(`${gitdir}.new`, gitdir);
  rmSync(`${gitdir}.old`, { recursive: true, force: true });
}
