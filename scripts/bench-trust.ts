// Benchmark of signed-commit checks (trust:): what the verify stage of a tick costs when the tip
// moved (read the raw commit from the store, the repository's trust/allowed_signers at the floor,
// check the signature, judge), per signature kind, and when the tip did not move.
// Real signatures (ssh-keygen, gpg, git commit -S), a real store fetched from the git stand-in.
//   bun scripts/bench-trust.ts [--commits 20]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../agent/core/log.ts";
import { systemClock } from "../agent/core/clock.ts";
import { verifyTip } from "../agent/loop/verify.ts";
import type { Ports } from "../agent/loop/ports.ts";
import { Source } from "../agent/source/source.ts";
import { layout } from "../agent/state/layout.ts";
import { StateStore } from "../agent/state/store.ts";
import { Trust, checkSignature } from "../agent/trust/trust.ts";
import { commitFacts } from "../agent/trust/commit.ts";
import { readKeyring } from "../agent/trust/openpgp.ts";
import { makeRepo } from "../test/fixtures/repo.ts";
import { gpgKey, signWith, signerLine, sshKey } from "../test/fixtures/signing.ts";
import { startGitServer } from "../test/servers/git.ts";

const arg = (n: string, d: number) => { const i = process.argv.indexOf(n); return i > 0 ? Number(process.argv[i + 1]) : d; };
const N = arg("--commits", 20);
const dir = mkdtempSync(join(tmpdir(), "bench-trust-"));
const log = createLogger("bench", { level: "error" });
const stats = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s.at(-1)! }; };
const ms = (x: number) => x < 0.01 ? x.toFixed(4) : x.toFixed(2);

try {
  const repo = await makeRepo(join(dir, "srv"), "ops", { README: "ops\n" });
  const server = await startGitServer({ root: join(dir, "srv") });
  const keys = { "ssh ed25519": await sshKey(dir, "ed"), "ssh ecdsa p256": await sshKey(dir, "ec", "ecdsa"), "ssh rsa 3072": await sshKey(dir, "rsa", "rsa"), "openpgp ed25519 (gpg)": await gpgKey(dir, "pgp") };
  const signers = join(dir, "allowed_signers");
  writeFileSync(signers, Object.values(keys).filter((k) => k.kind === "ssh").map((k, i) => signerLine(k as any, `k${i}@example.com`)).join("\n") + "\n");
  const pgp = keys["openpgp ed25519 (gpg)"];
  await repo.commit({ "trust/allowed_signers": "" }, "repository signers (empty)");

  const keyring = await readKeyring([{ path: pgp.path, text: await Bun.file(pgp.path).text() }]);
  console.log(`| signature | first check in the process | per tick that moves the tip: median | min | max | of which the signature math (median) | tip unchanged: median |`);
  console.log(`|---|---|---|---|---|---|---|`);
  for (const [name, key] of Object.entries(keys)) {
    const state = join(dir, `state-${name.replace(/\W+/g, "-")}`);
    const L = layout(state);
    const source = new Source({ gitdir: L.repo, url: `${server.url}/ops.git`, branch: "main", timeoutMs: 30_000, log, allowForcePush: false, requireDescent: true });
    const trust = await Trust.load({ allowedSigners: signers, openpgpKeys: [pgp.path], require: "tip" });
    const p = { trust, source, store: new StateStore(L.stateFile), log, clock: systemClock, cloud: null } as unknown as Ports;
    const ctx = { identity: { instanceId: "bench", region: "local", zone: "local-1a", role: "web", environment: "staging" }, notices: [] as string[] };
    await signWith(repo, key);
    const moved: number[] = [], still: number[] = [];
    let first = 0;
    for (let i = 0; i <= N; i++) {
      await repo.commit({ n: String(i) }, `change ${i}`);
      const { tip } = await source.poll(p.store.get().trusted?.tip ?? null);   // fetch outside the timing
      const t0 = performance.now();
      await verifyTip(p, tip, ctx);
      const t = performance.now() - t0;
      if (i === 0) first = t; else moved.push(t);
      const t1 = performance.now();
      await verifyTip(p, tip, ctx);
      still.push(performance.now() - t1);
    }
    const m = stats(moved);
    const object = await source.commitObject(p.store.get().trusted!.tip);
    const math: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      const c = await checkSignature(commitFacts("x", object), keyring);
      math.push(performance.now() - t0);
      if (c.kind !== "ssh" && c.kind !== "openpgp" || !c.valid) throw new Error(`bench: ${name} did not verify`);
    }
    console.log(`| ${name} | ${ms(first)} ms | **${ms(m.median)} ms** | ${ms(m.min)} ms | ${ms(m.max)} ms | ${ms(stats(math).median)} ms | ${ms(stats(still).median)} ms |`);
  }
  console.log(`\n${N} moved tips per kind; "first check" includes loading the store and, for OpenPGP, evaluating the openpgp library.`);
  await server.stop();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
