// SSH signatures as OpenSSH's PROTOCOL.sshsig defines them (what `ssh-keygen -Y sign` and git
// with gpg.format=ssh write): parse the armored blob, rebuild the signed data, verify it with the
// platform's crypto. Says nothing about whether the key is trusted: that is signers.ts.
import { createHash, verify } from "node:crypto";
import { isCertType, parseCertificate, type SshCertificate } from "./cert.ts";
import { Reader, TrustInputError, concat, parsePublicKey, sshString, type SshPublicKey } from "./wire.ts";

const MAGIC = new TextEncoder().encode("SSHSIG");
const BEGIN = "-----BEGIN SSH SIGNATURE-----", END = "-----END SSH SIGNATURE-----";
/** A real SSH signature is well under 2 KB (RSA-4096: ~1.1 KB armored); more is not one. */
export const MAX_SIGNATURE_BYTES = 16 * 1024;

export interface SshSignature {
  /** The key that made the signature (for a certificate: the certified key). */
  publicKey: SshPublicKey;
  /** The certificate the signature carries instead of a plain key, else null. */
  certificate: SshCertificate | null;
  namespace: string;
  hashAlgorithm: "sha256" | "sha512";
  /** The inner signature's algorithm: ssh-ed25519, ecdsa-sha2-nistp256, rsa-sha2-512, … */
  algorithm: string;
  signature: Uint8Array;
}

/** Parse an armored SSH signature. Throws TrustInputError naming what is wrong. */
export function parseSshSignature(armored: string): SshSignature {
  if (armored.length > MAX_SIGNATURE_BYTES) throw new TrustInputError(`the SSH signature is ${armored.length} bytes, more than any real one (${MAX_SIGNATURE_BYTES})`);
  const text = armored.trim();
  if (!text.startsWith(BEGIN) || !text.endsWith(END)) throw new TrustInputError(`the SSH signature armor is broken (it must start with ${BEGIN} and end with ${END})`);
  const body = text.slice(BEGIN.length, -END.length).replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length === 0) throw new TrustInputError("the SSH signature armor holds something that is not base64");
  const r = new Reader(new Uint8Array(Buffer.from(body, "base64")));
  if (!equal(r.bytes(6), MAGIC)) throw new TrustInputError("the SSH signature does not start with SSHSIG");
  const version = r.uint32();
  if (version !== 1) throw new TrustInputError(`SSH signature version ${version} is not supported (only 1)`);
  const keyBlob = r.string();
  const keyType = new TextDecoder().decode(new Reader(keyBlob).string());
  // A certificate: the signature is by the certified key; the certificate says who vouches for it.
  const certificate = isCertType(keyType) ? parseCertificate(keyBlob) : null;
  const publicKey = certificate ? certificate.key : parsePublicKey(keyBlob);
  const namespace = r.text();
  r.string(); // reserved
  const hashAlgorithm = r.text();
  if (hashAlgorithm !== "sha256" && hashAlgorithm !== "sha512") throw new TrustInputError(`SSH signature hash ${hashAlgorithm} is not sha256 or sha512`);
  const inner = new Reader(r.string());
  if (!r.done) throw new TrustInputError("trailing bytes after the SSH signature");
  const algorithm = inner.text();
  const signature = inner.string();
  if (!inner.done) throw new TrustInputError("trailing bytes inside the SSH signature");
  return { publicKey, certificate, namespace, hashAlgorithm, algorithm, signature };
}

/** What the key signed: MAGIC, namespace, reserved, hash algorithm, H(message). */
export function signedData(sig: Pick<SshSignature, "namespace" | "hashAlgorithm">, message: Uint8Array): Uint8Array {
  const h = createHash(sig.hashAlgorithm).update(message).digest();
  return concat(MAGIC, sshString(sig.namespace), sshString(""), sshString(sig.hashAlgorithm), sshString(new Uint8Array(h)));
}

/**
 * Is `sig` a valid signature of `message` by its own public key in `namespace`? Pure and total:
 * false (with why) for a wrong namespace, an algorithm that does not fit the key, or bad math.
 */
export function verifySshSignature(sig: SshSignature, message: Uint8Array, namespace: string): { ok: true } | { ok: false; why: string } {
  if (sig.namespace !== namespace) return { ok: false, why: `it was made for namespace "${sig.namespace}", not "${namespace}"` };
  return verifyRawSignature(sig.publicKey, sig.algorithm, sig.signature, signedData(sig, message));
}

/**
 * Is `signature` (of type `algorithm`, as the SSH wire carries it) a valid signature of `data` by
 * `k`? Pure and total. Used for sshsig's inner signature and for a CA's signature over a certificate.
 */
export function verifyRawSignature(k: SshPublicKey, algorithm: string, signature: Uint8Array, data: Uint8Array): { ok: true } | { ok: false; why: string } {
  try {
    let good: boolean;
    if (k.type === "ssh-ed25519") {
      if (algorithm !== "ssh-ed25519") return { ok: false, why: `signature type ${algorithm} does not fit an ed25519 key` };
      good = verify(null, data, k.key, signature);
    } else if (k.type.startsWith("ecdsa-sha2-")) {
      if (algorithm !== k.type) return { ok: false, why: `signature type ${algorithm} does not fit a ${k.type} key` };
      const size = { "ecdsa-sha2-nistp256": 32, "ecdsa-sha2-nistp384": 48, "ecdsa-sha2-nistp521": 66 }[k.type]!;
      const hash = { "ecdsa-sha2-nistp256": "sha256", "ecdsa-sha2-nistp384": "sha384", "ecdsa-sha2-nistp521": "sha512" }[k.type]!;
      const rs = new Reader(signature);
      const rr = rs.mpint(), ss = rs.mpint();
      if (rr.length > size || ss.length > size) return { ok: false, why: "the ECDSA signature values are too large" };
      good = verify(hash, data, { key: k.key, dsaEncoding: "ieee-p1363" }, concat(pad(rr, size), pad(ss, size)));
    } else if (k.type === "ssh-rsa") {
      // sshsig forbids SHA-1 ("ssh-rsa") signatures; so does OpenSSH for CA signatures by default.
      const hash = algorithm === "rsa-sha2-256" ? "sha256" : algorithm === "rsa-sha2-512" ? "sha512" : null;
      if (!hash) return { ok: false, why: `RSA signature type ${algorithm} is not accepted (only rsa-sha2-256 and rsa-sha2-512)` };
      good = verify(hash, data, k.key, signature);
    } else {
      return { ok: false, why: `key type ${k.type} is not supported` };
    }
    return good ? { ok: true } : { ok: false, why: "the signature does not match the commit's content" };
  } catch (e) {
    if (e instanceof TrustInputError) return { ok: false, why: e.message };
    return { ok: false, why: `the signature cannot be checked (${(e as Error).message})` };
  }
}

function pad(b: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(b, size - b.length);
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
