// The node's trust: its allowed_signers, OpenPGP keys and revoked keys, read once at start (a typo
// refuses the config with file:line), and the check of one commit object against them. Caches
// verdicts per commit and signer set, so a tick whose tip did not move costs nothing.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { AgentError } from "../core/errors.ts";
import type { TrustConfig } from "../manifest/schema.ts";
import { commitFacts, type CommitFacts } from "./commit.ts";
import { checkOpenPgp, readKeyring, type OpenPgpKeyring } from "./openpgp.ts";
import { parseAllowedSigners, parseRevokedKeys, type AllowedSigner, type RevokedKey } from "./signers.ts";
import { parseSshSignature, verifySshSignature } from "./sshsig.ts";
import { judge, type SignatureCheck, type TrustPolicy, type Verdict } from "./verdict.ts";
import { TrustInputError } from "./wire.ts";

/** Where the repository may carry more signers (5b: effective only from a commit the node trusted). */
import { REPO_SIGNERS } from "./floor.ts";
export { REPO_SIGNERS };

/** The repository's signers file as read at a trusted commit. */
export interface RepoSigners { text: string; commit: string }

export interface CommitCheck { facts: CommitFacts; check: SignatureCheck; verdict: Verdict }

export class Trust {
  private readonly cache = new Map<string, CommitCheck>();
  /** The tip this agent last accepted (in memory: a restart checks it once more). */
  acceptedTip: string | null = null;
  /** Releases accepted, as "<commit>@<accepted tip>". */
  readonly acceptedReleases = new Set<string>();

  private constructor(
    readonly config: TrustConfig,
    private readonly signers: AllowedSigner[],
    private readonly revoked: RevokedKey[],
    private readonly keyring: OpenPgpKeyring | null,
  ) {}

  /** Read the files of `trust:`. Throws AgentError TrustConfigInvalid naming file:line and the fix. */
  static async load(config: TrustConfig, files: { signers?: string } = {}): Promise<Trust> {
    const read = (path: string, field: string) => {
      try { return readFileSync(path, "utf8"); } catch (e) {
        throw AgentError.terminal("TrustConfigInvalid", `cannot read ${path} (trust.${field}): ${(e as { code?: string }).code ?? e}; write the file (scripts/bootstrap can) or fix the path in the agent's config`);
      }
    };
    const problems: string[] = [];
    const signersPath = files.signers ?? config.allowedSigners;
    const signers = signersPath ? parseAllowedSigners(read(signersPath, "allowedSigners"), signersPath) : { entries: [], problems: [] };
    const revoked = config.revokedKeys ? parseRevokedKeys(read(config.revokedKeys, "revokedKeys"), config.revokedKeys) : { entries: [], problems: [] };
    for (const p of [...signers.problems, ...revoked.problems]) problems.push(`${p.file}:${p.line}: ${p.message}`);
    let keyring: OpenPgpKeyring | null = null;
    if (config.openpgpKeys.length) {
      try { keyring = await readKeyring(config.openpgpKeys.map((path) => ({ path, text: read(path, "openpgpKeys") }))); } catch (e) {
        if (e instanceof TrustInputError) problems.push(e.message); else throw e;
      }
    }
    if (problems.length) {
      throw AgentError.terminal("TrustConfigInvalid", `the trusted keys cannot be read; the agent does not start with a broken trust list:\n${problems.join("\n")}`);
    }
    return new Trust({ ...config, ...(files.signers ? { allowedSigners: files.signers } : {}) }, signers.entries, revoked.entries, keyring);
  }

  /** The policy for a commit: the node's own signers, plus the repository's at a trusted commit. */
  policy(repo: RepoSigners | null): { policy: TrustPolicy; notices: string[] } {
    const notices: string[] = [];
    let extra: AllowedSigner[] = [];
    const label = repo ? `${REPO_SIGNERS} at ${repo.commit.slice(0, 12)}` : null;
    if (repo) {
      const parsed = parseAllowedSigners(repo.text, label!);
      extra = parsed.entries;
      for (const p of parsed.problems) notices.push(`${p.file} line ${p.line} is ignored: ${p.message}`);
    }
    return {
      policy: {
        allowedSignersFile: this.config.allowedSigners ?? null, openpgpKeyFiles: this.config.openpgpKeys,
        signers: [...this.signers, ...extra], revoked: this.revoked, repositorySigners: extra.length ? label : null,
      },
      notices,
    };
  }

  /** Check one commit object. Read-only; the same commit and signer set answer from the cache. */
  async verify(oid: string, object: Uint8Array, what: "tip" | "release", repo: RepoSigners | null): Promise<CommitCheck & { notices: string[] }> {
    const { policy, notices } = this.policy(repo);
    const key = `${oid}:${what}:${repo ? createHash("sha256").update(repo.text).digest("hex") : "-"}`;
    const hit = this.cache.get(key);
    if (hit) return { ...hit, notices };
    const facts = commitFacts(oid, object);
    const check = await checkSignature(facts, this.keyring);
    const out = { facts, check, verdict: judge(facts, check, policy, what) };
    if (this.cache.size > 256) this.cache.clear();
    this.cache.set(key, out);
    return { ...out, notices };
  }
}

/** What the signature says, before any trust decision. Never throws. */
export async function checkSignature(facts: CommitFacts, keyring: OpenPgpKeyring | null): Promise<SignatureCheck> {
  if (facts.malformed) return { kind: "unreadable", format: facts.signature?.kind === "openpgp" ? "openpgp" : facts.signature?.kind === "ssh" ? "ssh" : "unknown", why: facts.malformed };
  const sig = facts.signature;
  if (!sig) return { kind: "none" };
  if (sig.kind === "ssh") {
    try {
      const parsed = parseSshSignature(sig.text);
      const r = verifySshSignature(parsed, facts.payload, "git");
      const c = parsed.certificate;
      const certificate = c ? {
        keyId: c.keyId, serial: String(c.serial), type: c.type, principals: c.principals, validAfter: c.validAfter, validBefore: c.validBefore,
        criticalOptions: c.criticalOptions, caFingerprint: c.ca.fingerprint, caKeyType: c.ca.type, caValid: c.caSignature.ok, ...(c.caSignature.ok ? {} : { caWhy: c.caSignature.why }),
      } : undefined;
      return { kind: "ssh", fingerprint: parsed.publicKey.fingerprint, keyType: parsed.publicKey.type, valid: r.ok, ...(r.ok ? {} : { why: r.why }), ...(certificate ? { certificate } : {}) };
    } catch (e) {
      return { kind: "unreadable", format: "ssh", why: e instanceof TrustInputError ? e.message : String(e) };
    }
  }
  if (sig.kind === "openpgp") {
    // Without trusted OpenPGP keys the check still reads the signature, to say whose it is.
    return checkOpenPgp(sig.text, facts.payload, keyring ?? { keys: [], files: [] });
  }
  return { kind: "unreadable", format: "unknown", why: "the gpgsig header holds neither an SSH nor an OpenPGP signature" };
}
