// Native (zlib) inflate for isomorphic-git's pack reader and pack indexer. isomorphic-git inflates
// with pako, in JavaScript (it never uses the runtime's own zlib under Bun); scripts/build-agent.ts
// points its two inflate sites here. Both take a view that may run past the object's end (the rest
// of the pack): zlib stops at the end of the stream.
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
