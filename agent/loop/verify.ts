// The trust stage of a tick (trust: in the node's config): check the tip's signature before its
// manifest is read, and with `require: tip+release` the pinned commit's before its role is read.
// A refusal is a terminal AgentError (CommitUntrusted) that leaves the running release alone.
// The replay floor: a tip is checked against the signers at the last tip this node accepted; a
// node that never accepted one takes its floor from the newest agent:tip of its peers.
import { AgentError } from "../core/errors.ts";
import { REPO_SIGNERS, newestTip } from "../trust/floor.ts";
import type { RepoSigners } from "../trust/trust.ts";
import type { Identity, Ports } from "./ports.ts";

export interface VerifyContext { identity: Identity; notices: string[]; dryRun?: boolean }

/** Check the branch tip. No-op without trust:, and free when this agent already accepted `tip`. */
export async function verifyTip(p: Ports, tip: string, t: VerifyContext): Promise<void> {
  const trust = p.trust;
  if (!trust || trust.acceptedTip === tip) return;
  const src = needSource(p);
  const trusted = p.store.get().trusted ?? null;
  // The signers of the repository count from the commit this node last accepted (never from the
  // tip itself: a push cannot vouch for itself). The same tip again uses the floor it was accepted on.
  let floor: string | null = trusted ? (trusted.tip === tip ? trusted.signersFrom : trusted.tip) : null;
  if (!trusted) floor = await peerFloor(p, tip, t);
  const repo = floor ? await repoSigners(p, floor) : null;
  const r = await trust.verify(tip, await src.commitObject(tip), "tip", repo);
  t.notices.push(...r.notices);
  if (!r.verdict.accepted) throw AgentError.terminal("CommitUntrusted", r.verdict.message);
  p.log.child("trust").info("tip verified", { tip, signer: r.verdict.signer, key: r.verdict.key });
  trust.acceptedTip = tip;
  if (!t.dryRun && (trusted?.tip !== tip || trusted.signersFrom !== floor)) p.store.update((s) => { s.trusted = { tip, signersFrom: floor }; });
}

/** With require: tip+release, check the commit a release runs before anything is read from it. */
export async function verifyRelease(p: Ports, commit: string): Promise<void> {
  const trust = p.trust;
  if (!trust || trust.config.require !== "tip+release") return;
  const trusted = p.store.get().trusted ?? null;
  if (!trusted) throw AgentError.terminal("CommitUntrusted", `refusing release ${commit.slice(0, 12)}: no tip has been verified yet, so there is no trusted manifest that pins it`);
  const key = `${commit}@${trusted.tip}`;
  if (trust.acceptedReleases.has(key) || commit === trusted.tip) return;
  const r = await trust.verify(commit, await needSource(p).commitObject(commit), "release", await repoSigners(p, trusted.tip));
  if (!r.verdict.accepted) throw AgentError.terminal("CommitUntrusted", r.verdict.message);
  trust.acceptedReleases.add(key);
}

/** trust/allowed_signers at a commit this node trusts, or null when the repository has none. */
async function repoSigners(p: Ports, commit: string): Promise<RepoSigners | null> {
  await p.source.ensureCommit(commit);
  const text = await needSource(p).readFile(commit, REPO_SIGNERS);
  return text === null ? null : { text, commit };
}

/**
 * A node that never accepted a tip: the tip must descend from every agent:tip its peers report,
 * and the newest of them (the one that descends from the others) is the floor whose
 * trust/allowed_signers counts. A tip that does not descend from one of them is refused.
 */
async function peerFloor(p: Ports, tip: string, t: VerifyContext): Promise<string | null> {
  const peers = p.cloud?.peerTips ? await p.cloud.peerTips(t.identity) : [];
  const tips = [...new Set(peers.map((x) => x.tip))];
  if (tips.length === 0) {
    t.notices.push("trust: no running peer reports agent:tip, so this node's first tip is checked against its own allowed_signers only");
    return null;
  }
  const src = needSource(p);
  const who = (c: string) => peers.filter((x) => x.tip === c).map((x) => x.instanceId).join(", ");
  for (const c of tips) {
    if (!(await src.descendsFrom(tip, c))) {
      throw AgentError.terminal("BehindPeers",
        `refusing tip ${tip.slice(0, 12)}: it does not descend from ${c.slice(0, 12)}, which peer ${who(c)} already accepted (an older branch may have been pushed back); push a new signed commit on top of ${c.slice(0, 12)}`);
    }
  }
  const rel = new Map<string, boolean>();
  for (const a of tips) for (const b of tips) if (a !== b) rel.set(`${a}>${b}`, await src.descendsFrom(a, b));
  const newest = newestTip(tips, (a, b) => rel.get(`${a}>${b}`) ?? false);
  if (!newest) {
    // The tip joins them all (a merge), so nothing older can slip in; but no one of them says
    // which trust/allowed_signers counts: only the node's own file does.
    t.notices.push(`trust: peers report agent:tip values that are not on one line (${tips.map((c) => `${c.slice(0, 12)} on ${who(c)}`).join("; ")}); the tip descends from all of them, and is checked against the node's own allowed_signers only`);
  }
  return newest;
}

function needSource(p: Ports) {
  const s = p.source;
  if (!s.commitObject || !s.readFile || !s.descendsFrom) throw new Error("trust: needs a source that reads raw commits (commitObject, readFile, descendsFrom)");
  return s as Required<Pick<typeof s, "commitObject" | "readFile" | "descendsFrom">> & typeof s;
}
