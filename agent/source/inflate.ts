// Native (zlib, node:crypto) work for isomorphic-git's pack reader and pack indexer. isomorphic-git
// inflates with pako, in JavaScript (it never uses the runtime's own zlib under Bun), hashes with
// crypto.subtle (an asynchronous call per object) and computes CRC-32 in JavaScript;
// scripts/native-inflate.ts points those sites here at build time. The inflate functions take a
// view that may run past the object's end (the rest of the pack): zlib stops at the end of the stream.
// (SHA-1 and CRC-32 from Bun's globals: importing node:crypto would load it at the start of every
// `agent _source`, 2.5 MB of RSS, though most sessions only poll.)
import { inflateSync } from "node:zlib";

/** The object whose zlib stream starts at `input[0]`. */
export function inflate(input: Uint8Array): Buffer {
  return inflateSync(input);
}

/**
 * The object whose zlib stream starts at `input[0]`, and how many bytes of `input` the stream took;
 * null when `input` ends before the stream does (the caller adds the next chunk and asks again).
 */
export function inflateObject(input: Uint8Array): { data: Buffer; consumed: number } | null {
  try {
    const { buffer, engine } = inflateSync(input, { info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
    return { data: buffer, consumed: engine.bytesWritten };
  } catch (e) {
    if ((e as { code?: string }).code === "Z_BUF_ERROR") return null;
    throw e;
  }
}

/** A git object's id: the SHA-1 of "<type> <length>\0" and its content, without copying them together. */
export function hashObject(type: string, content: Uint8Array): string {
  return new Bun.CryptoHasher("sha1").update(`${type} ${content.length}\0`).update(content).digest("hex");
}

/** CRC-32 (as a pack index stores it, unsigned) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  return Bun.hash.crc32(bytes) >>> 0;
}
