// OpenPGP signatures (what `gpg` writes for `git commit -S`), checked with `openpgp` from npm
// against the keys of trust.openpgpKeys. Loaded on first use: a node without OpenPGP keys never
// evaluates the library.
import type { Key } from "openpgp";
import { TrustInputError } from "./wire.ts";
import type { SignatureCheck } from "./verdict.ts";

type OpenPgp = typeof import("openpgp");
let lib: OpenPgp | null = null;
const load = async (): Promise<OpenPgp> => lib ??= await import("openpgp");

export interface OpenPgpKeyring { keys: Key[]; files: string[] }

/** Read armored public keys; throws TrustInputError naming the file. */
export async function readKeyring(files: { path: string; text: string }[]): Promise<OpenPgpKeyring> {
  const pgp = await load();
  const keys: Key[] = [];
  for (const f of files) {
    try { keys.push(...await pgp.readKeys({ armoredKeys: f.text })); } catch (e) {
      throw new TrustInputError(`${f.path}: not an armored OpenPGP public key (${(e as Error).message}); export it with gpg --armor --export KEYID`);
    }
  }
  return { keys, files: files.map((f) => f.path) };
}

/** Check an armored OpenPGP signature over `payload`. Never throws: a failure is data. */
export async function checkOpenPgp(armored: string, payload: Uint8Array, ring: OpenPgpKeyring): Promise<SignatureCheck> {
  const pgp = await load();
  let signature;
  try { signature = await pgp.readSignature({ armoredSignature: armored }); } catch (e) {
    return { kind: "unreadable", format: "openpgp", why: `the OpenPGP armor is broken (${(e as Error).message})` };
  }
  const packet = signature.packets[0];
  const keyId = packet?.issuerKeyID?.toHex().toUpperCase() ?? "unknown";
  const created = packet?.created ?? new Date(0);
  const key = ring.keys.find((k) => k.getKeys(packet!.issuerKeyID).length > 0);
  if (!key) return { kind: "openpgp", keyId, fingerprint: null, userIds: [], valid: false, expired: false, revoked: false };
  const fingerprint = key.getFingerprint().toUpperCase();
  const userIds = key.getUserIDs();
  // Key validity is judged at the signature's creation time, like revocations and expiry in gpg.
  const revoked = await key.isRevoked(undefined, undefined, created).catch(() => false);
  const expires = await key.getExpirationTime().catch(() => null);
  const expired = expires instanceof Date && expires.getTime() <= created.getTime();
  try {
    const message = await pgp.createMessage({ binary: payload });
    const r = await pgp.verify({ message, signature, verificationKeys: [key], date: created, format: "binary" });
    await r.signatures[0]!.verified;
    return { kind: "openpgp", keyId, fingerprint, userIds, valid: true, expired, revoked };
  } catch (e) {
    const why = (e as Error).message;
    return { kind: "openpgp", keyId, fingerprint, userIds, valid: false, expired, revoked, why: /expired|revoked/i.test(why) ? why : "the signature does not match the commit's content" };
  }
}

export { TrustInputError };
