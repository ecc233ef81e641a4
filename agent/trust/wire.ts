// The SSH wire format (RFC 4251 §5) for keys and signatures: strings, mpints, and public keys
// turned into the platform's KeyObjects. Reads only; every malformed input is a thrown TrustInputError.
import { createHash, createPublicKey, type JsonWebKeyInput, type KeyObject } from "node:crypto";

/** Input that is not what it claims to be (truncated, wrong type, bad encoding). */
export class TrustInputError extends Error {}

export class Reader {
  private off = 0;
  constructor(readonly buf: Uint8Array) {}
  get done(): boolean { return this.off >= this.buf.length; }
  /** How many bytes have been read. */
  get offset(): number { return this.off; }
  bytes(n: number): Uint8Array {
    if (n < 0 || this.off + n > this.buf.length) throw new TrustInputError("truncated SSH data");
    const out = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }
  uint32(): number {
    const b = this.bytes(4);
    return ((b[0]! << 24) >>> 0) + (b[1]! << 16) + (b[2]! << 8) + b[3]!;
  }
  string(): Uint8Array { return this.bytes(this.uint32()); }
  text(): string { return new TextDecoder().decode(this.string()); }
  /** An mpint without its sign byte (all values here are positive). */
  mpint(): Uint8Array {
    let b = this.string();
    while (b.length > 1 && b[0] === 0) b = b.subarray(1);
    return b;
  }
}

export function sshString(data: Uint8Array | string): Uint8Array {
  const b = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const out = new Uint8Array(4 + b.length);
  new DataView(out.buffer).setUint32(0, b.length);
  out.set(b, 4);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");

const CURVES: Record<string, { crv: string; size: number }> = {
  nistp256: { crv: "P-256", size: 32 }, nistp384: { crv: "P-384", size: 48 }, nistp521: { crv: "P-521", size: 66 },
};

export const KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"] as const;

export interface SshPublicKey {
  type: string;
  /** The key's wire blob: what fingerprints and comparisons use. */
  blob: Uint8Array;
  /** SHA256:… as ssh-keygen -l prints it. */
  fingerprint: string;
  key: KeyObject;
}

/** Parse a public key blob (ed25519, ecdsa nistp256/384/521, rsa) into a KeyObject. */
export function parsePublicKey(blob: Uint8Array): SshPublicKey {
  const r = new Reader(blob);
  const type = r.text();
  let jwk: JsonWebKeyInput["key"];
  if (type === "ssh-ed25519") {
    const k = r.string();
    if (k.length !== 32) throw new TrustInputError("an ed25519 key must be 32 bytes");
    jwk = { kty: "OKP", crv: "Ed25519", x: b64url(k) };
  } else if (type.startsWith("ecdsa-sha2-")) {
    const curve = r.text();
    const c = CURVES[curve];
    if (!c || type !== `ecdsa-sha2-${curve}`) throw new TrustInputError(`unsupported ECDSA curve ${curve}`);
    const q = r.string();
    if (q.length !== 1 + 2 * c.size || q[0] !== 4) throw new TrustInputError("the ECDSA point is not an uncompressed point on its curve");
    jwk = { kty: "EC", crv: c.crv, x: b64url(q.subarray(1, 1 + c.size)), y: b64url(q.subarray(1 + c.size)) };
  } else if (type === "ssh-rsa") {
    const e = r.mpint(), n = r.mpint();
    if (n.length < 256) throw new TrustInputError("RSA keys shorter than 2048 bits are not accepted");
    jwk = { kty: "RSA", e: b64url(e), n: b64url(n) };
  } else {
    throw new TrustInputError(`unsupported key type ${type} (use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa)`);
  }
  if (!r.done) throw new TrustInputError(`trailing bytes after the ${type} key`);
  let key: KeyObject;
  try { key = createPublicKey({ key: jwk, format: "jwk" }); } catch (e) {
    throw new TrustInputError(`not a valid ${type} public key (${(e as Error).message})`);
  }
  return { type, blob, fingerprint: fingerprintOf(blob), key };
}

export function fingerprintOf(blob: Uint8Array): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** "ssh-ed25519 AAAA… comment" → the key (the type word must match the blob's). */
export function parseKeyText(type: string, base64: string): SshPublicKey {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw new TrustInputError("the key is not base64");
  const k = parsePublicKey(new Uint8Array(Buffer.from(base64, "base64")));
  if (k.type !== type) throw new TrustInputError(`the key says ${type} but its data is a ${k.type} key`);
  return k;
}
