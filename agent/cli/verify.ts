// `agent verify [COMMIT]`: who signed a commit and whether this node (or, in CI, an
// allowed_signers file) would accept it. Reads a git store or checkout; changes nothing.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fs from "node:fs";
import { AgentError, UsageError } from "../core/errors.ts";
// Loaded when `agent verify` runs: the command table is imported by the daemon too, which must
// never load isomorphic-git (test/unit/daemon-imports.test.ts).
type Git = typeof import("isomorphic-git").default;
let git: Git;
const loadGit = async () => { git ??= (await import("isomorphic-git")).default; };
import { layout } from "../state/layout.ts";
import { REPO_SIGNERS, Trust } from "../trust/trust.ts";
import { CONFIG_HELP, CONFIG_OPTION, EXIT, parse, type Command } from "./command.ts";
import { configPath, loadConfig } from "./config.ts";

const help = `Usage: agent verify [COMMIT] [--json] [--repo DIR] [--allowed-signers FILE]
                    [--openpgp-key FILE]... [--revoked-keys FILE] [--floor COMMIT]

Says who signed COMMIT and whether it would be accepted: the SSH key (principals and
fingerprint, and the allowed_signers line that lists it) or the OpenPGP key, and for a refusal
the one sentence a node would put in \`agent status\`. valid-after/valid-before are checked
against the commit's committer time, as git does.

On a node (no --repo): reads the node's object store and its trust: settings; COMMIT defaults
to the last tip the node saw, and the repository's ${REPO_SIGNERS} counts as it was at the
last tip the node accepted.

In the ops repository's CI: --repo DIR (default: the current directory) with
--allowed-signers FILE (and/or --openpgp-key FILE); COMMIT defaults to HEAD, and
${REPO_SIGNERS} counts as it is at COMMIT's first parent (--floor COMMIT to choose), so a
commit that adds a key must be signed by a key trusted before it.

Exit status: 0 accepted, 1 refused, 2 on a usage error.

Options:
      --json                  print {commit, subject, format, signer, key, listedIn, accepted, reason, message}
      --repo DIR              a checkout (or bare repository) instead of the node's store
      --allowed-signers FILE  trust these SSH keys (git's allowed_signers format)
      --openpgp-key FILE      trust this armored OpenPGP key (repeatable)
      --revoked-keys FILE     never trust these keys (one per line)
      --floor COMMIT          read ${REPO_SIGNERS} at this commit
${CONFIG_HELP}
  -h, --help                  show this help

Examples:
  agent verify                                       # on a node: the tip it saw last
  agent verify HEAD --repo . --allowed-signers .ci/allowed_signers --json
`;

export const verify: Command = {
  name: "verify",
  summary: "who signed a commit, and whether this node would accept it",
  help,
  async run(argv) {
    await loadGit();
    const a = parse(argv, {
      ...CONFIG_OPTION, json: { type: "boolean" }, repo: { type: "string" }, "allowed-signers": { type: "string" },
      "openpgp-key": { type: "string", multiple: true }, "revoked-keys": { type: "string" }, floor: { type: "string" },
    }, true);
    if (a.positionals.length > 1) throw new UsageError(`expected at most one COMMIT, got ${a.positionals.length}`);
    const flagsTrust = !!(a.values["allowed-signers"] || a.values["openpgp-key"]?.length);
    const onNode = !a.values.repo && !flagsTrust && existsSync(configPath(a.values.config));
    const config = onNode || a.values.config ? loadConfig(a.values.config) : null;
    const gitdir = onNode ? layout(config!.stateDir).repo : gitdirOf(a.values.repo ?? ".");

    const trustConfig = flagsTrust
      ? { allowedSigners: a.values["allowed-signers"], openpgpKeys: a.values["openpgp-key"] ?? [], revokedKeys: a.values["revoked-keys"], require: "tip" as const }
      : config?.trust;
    if (!trustConfig) throw new UsageError(onNode ? `${config!.path} has no trust: settings, so this node accepts any commit; pass --allowed-signers FILE to check against a list` : "pass --allowed-signers FILE (or --openpgp-key FILE), or run it on a node with trust: in its config");
    const trust = await Trust.load(trustConfig);

    const state = onNode ? readState(layout(config!.stateDir).stateFile) : null;
    const commit = await resolve(gitdir, a.positionals[0] ?? (onNode ? state?.lastTip ?? "refs/heads/agent-tip" : "HEAD"));
    let floor: string | null = a.values.floor ? await resolve(gitdir, a.values.floor) : null;
    if (!a.values.floor) {
      if (onNode) floor = state?.trusted ? (state.trusted.tip === commit ? state.trusted.signersFrom : state.trusted.tip) : null;
      else floor = (await git.readCommit({ fs, gitdir, oid: commit })).commit.parent[0] ?? null;
    }
    const repoText = floor ? await readBlob(gitdir, floor, REPO_SIGNERS) : null;
    const { object } = await git.readObject({ fs, gitdir, oid: commit, format: "content" });
    const r = await trust.verify(commit, object as Uint8Array, "tip", repoText !== null ? { text: repoText, commit: floor! } : null);
    const v = r.verdict;
    if (a.values.json) {
      process.stdout.write(JSON.stringify({
        commit, subject: r.facts.subject, committer: r.facts.committer, committerTime: new Date(r.facts.committerTime * 1000).toISOString(),
        format: v.format, signer: v.signer, key: v.key, listedIn: v.listedIn, accepted: v.accepted, reason: v.reason, message: v.message, notices: r.notices,
      }, null, 2) + "\n");
    } else {
      process.stdout.write(`commit ${commit} "${r.facts.subject}"\n`);
      process.stdout.write(v.key ? `signed by ${v.signer ?? "an unknown signer"} (${v.format} ${v.key})${v.listedIn ? `, listed in ${v.listedIn}` : ""}\n` : "not signed by a readable key\n");
      for (const n of r.notices) process.stdout.write(`note: ${n}\n`);
      process.stdout.write(v.accepted ? `accepted${onNode ? ": this node would run it" : ""}\n` : `refused: ${v.message}\n`);
    }
    return v.accepted ? EXIT.ok : EXIT.failed;
  },
};

function gitdirOf(dir: string): string {
  if (existsSync(join(dir, ".git"))) return join(dir, ".git");
  if (existsSync(join(dir, "objects")) && existsSync(join(dir, "HEAD"))) return dir;
  throw new UsageError(`${dir} is not a git checkout or repository: pass --repo DIR`);
}

/** A full or short commit id, a ref (HEAD, main, refs/...), optionally with ~N / ^ (first parents). */
async function resolve(gitdir: string, ref: string): Promise<string> {
  try {
    const m = /^(.+?)((?:[~^]\d*)*)$/.exec(ref)!;
    const base = m[1]!;
    let oid = /^[0-9a-f]{40}$/.test(base) ? base
      : /^[0-9a-f]{4,39}$/.test(base) ? await git.expandOid({ fs, gitdir, oid: base })
        : await git.resolveRef({ fs, gitdir, ref: base });
    for (const step of m[2]!.match(/[~^]\d*/g) ?? []) {
      const n = step[0] === "~" ? Number(step.slice(1) || 1) : 1;
      for (let i = 0; i < n; i++) oid = (await git.readCommit({ fs, gitdir, oid })).commit.parent[0]!;
      if (!oid) throw new Error("no parent");
    }
    return oid;
  } catch {
    throw AgentError.terminal("CommitNotFound", `${ref} is not a commit in ${gitdir}; pass a full commit id, a branch or HEAD`);
  }
}

async function readBlob(gitdir: string, commit: string, filepath: string): Promise<string | null> {
  try { return new TextDecoder().decode((await git.readBlob({ fs, gitdir, oid: commit, filepath })).blob); } catch { return null; }
}

function readState(path: string): { lastTip?: string | null; trusted?: { tip: string; signersFrom: string | null } | null } | null {
  try { return JSON.parse(readFileSync(path, "utf8")); } catch { return null; }
}
