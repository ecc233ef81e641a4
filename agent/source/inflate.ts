// Native (zlib, Bun's hashes) work for isomorphic-git's pack reader and pack indexer, and for
// pack.ts. isomorphic-git inflates with pako, in JavaScript (it never uses the runtime's own zlib
// under Bun), hashes with crypto.subtle (an asynchronous call per object) and computes CRC-32 in
// JavaScript; scripts/native-inflate.ts points those sites here at build time. The inflate
// functions take a view that may run past the object's end (the rest of the pack): zlib stops at
// the end of the stream. SHA-1 and CRC-32 are Bun's (Bun.CryptoHasher, Bun.hash.crc32).
import { constants, createInflate, inflateSync } from "node:zlib";

/**
 * The object whose zlib stream starts at `input[0]`. With `size` (the pack header's, so exact),
 * into one buffer of that size through one reused zlib stream; without, by zlib.inflateSync.
 */
export function inflate(input: Uint8Array, size?: number): Buffer {
  if (size === undefined || !zlibHandle()) return inflateSync(input);
  const r = inflateSized(input, size);
  if (!r) throw new Error("zlib: unexpected end of file");
  return r.data;
}

/**
 * The object whose zlib stream starts at `input[0]`, and how many bytes of `input` the stream took;
 * null when `input` ends before the stream does (the caller adds the next chunk and asks again).
 */
export function inflateObject(input: Uint8Array, size?: number): { data: Buffer; consumed: number } | null {
  if (size !== undefined && zlibHandle()) return inflateSized(input, size);
  try {
    const { buffer, engine } = inflateSync(input, { info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
    return { data: buffer, consumed: engine.bytesWritten };
  } catch (e) {
    if ((e as { code?: string }).code === "Z_BUF_ERROR") return null;
    throw e;
  }
}

/**
 * `bytes` as a Buffer over the same memory (Buffer.from copies): for chunks nothing writes to again,
 * a fetch's pack and the HTTP chunks it came in (whose copies were 3 × the pack's size of garbage).
 */
export function asBuffer(bytes: Uint8Array | ArrayBuffer | string): Buffer {
  if (Buffer.isBuffer(bytes)) return bytes;
  return ArrayBuffer.isView(bytes) ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : Buffer.from(bytes as string);
}

/** A git object's id: the SHA-1 of "<type> <length>\0" and its content, without copying them together. */
export function hashObject(type: string, content: Uint8Array): string {
  return new Bun.CryptoHasher("sha1").update(`${type} ${content.length}\0`).update(content).digest("hex");
}

/** CRC-32 (as a pack index stores it, unsigned) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  return Bun.hash.crc32(bytes) >>> 0;
}

// One zlib inflate stream, reset for every object: zlib.inflateSync builds a stream object, a 16 KB
// output chunk and a copy of the result per call, which cost more than the inflating in a first
// release of 2,000 files. Its handle is node:zlib's internal one (the same in Node and Bun); when a
// runtime does not have it, inflate() and inflateObject() use inflateSync (test/unit/source-inflate
// checks that this runtime has it).
interface Handle {
  reset(): void;
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number) => void;
}
let stream: { handle: Handle; state: Uint32Array; keep: unknown } | null | undefined;
let failure: { message: string; errno: number } | null = null;

/** Is the reused zlib stream available (else inflateSync is used)? */
export function zlibHandle(): boolean {
  if (stream === undefined) {
    const z = createInflate() as unknown as { _handle?: Handle; _writeState?: Uint32Array };
    if (typeof z._handle?.writeSync === "function" && typeof z._handle.reset === "function" && z._writeState instanceof Uint32Array) {
      z._handle.onerror = (message, errno) => { failure = { message, errno }; };
      stream = { handle: z._handle, state: z._writeState, keep: z };
    } else stream = null;
  }
  return !!stream;
}

function inflateSized(input: Uint8Array, size: number): { data: Buffer; consumed: number } | null {
  const { handle, state } = stream!;
  const out = Buffer.allocUnsafe(size + 1);   // one byte more: a stream longer than stated is seen
  failure = null;
  handle.reset();
  handle.writeSync(constants.Z_FINISH, input, 0, input.length, out, 0, out.length);
  if (failure) {
    const f: { message: string; errno: number } = failure;
    failure = null;
    if (f.errno === constants.Z_BUF_ERROR) return null;   // the input ended inside the stream
    throw Object.assign(new Error(`zlib: ${f.message}`), { errno: f.errno });
  }
  const [availOut, availIn] = state as unknown as [number, number];
  if (availOut === 0) throw new Error(`zlib: the object inflates to more than the ${size} bytes its header says`);
  return { data: out.subarray(0, out.length - availOut), consumed: input.length - availIn };
}
