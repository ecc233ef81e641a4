// A build-time patch of isomorphic-git: its pack reader and pack indexer inflate with pako (in
// JavaScript: isomorphic-git hard-codes `supportsDecompressionStream = false`), which is most of
// the CPU of a first release and, with pako's 64 KB output chunk per object, much of its peak
// RSS. The patch points both sites at agent/source/inflate.ts (node:zlib), and the indexer's SHA-1
// and CRC-32 of every object there too (Bun's hasher and crc32: crypto.subtle costs an asynchronous
// round trip per object, crc-32 is JavaScript); shasum's other callers get node:crypto. Every pattern must be
// found exactly once: after an upgrade of isomorphic-git that moved one, the build fails and says
// which, rather than shipping the slow path silently.
import { resolve } from "node:path";
import type { BunPlugin } from "bun";

const INFLATE_MODULE = resolve(import.meta.dir, "../agent/source/inflate.ts");

/** [what it is, the text in isomorphic-git's index.cjs, what it becomes] */
const EDITS: [string, string, string][] = [
  ["the inflate of the pack reader (readSlice) and of loose objects",
    `    return supportsDecompressionStream
      ? await nativeInflate(buffer)
      : pako.inflate(buffer)`,
    `    return __nativeInflate.inflate(buffer)`],
  ["readSlice's copy of what inflate returned (already a Buffer)",
    `    object = Buffer.from(await inflate(buffer));`,
    `    object = __nativeInflate.inflate(buffer, length);`],   // the header's size: one exact buffer
  ["the streaming inflate of the pack indexer (listpack)",
    `    const inflator = new pako.Inflate();
    while (!inflator.result) {
      const chunk = await reader.chunk();
      if (!chunk) break
      inflator.push(chunk, false);
      if (inflator.err) {
        throw new InternalError(\`Pako error: \${inflator.msg}\`)
      }
      if (inflator.result) {
        if (inflator.result.length !== length) {
          throw new InternalError(
            \`Inflated object size is different from that stated in packfile.\`
          )
        }

        // Backtrack parser to where deflated data ends
        await reader.undo();
        await reader.read(chunk.length - inflator.strm.avail_in);
        const end = reader.tell();
        await onData({
          data: inflator.result,
          type,
          num: numObjects,
          offset,
          end,
          reference,
          ofs,
        });
      }
    }`,
    `    let input = null;
    for (;;) {
      const chunk = await reader.chunk();
      if (!chunk) break
      input = input ? Buffer.concat([input, chunk]) : chunk;
      const inflated = __nativeInflate.inflateObject(input, length);
      if (!inflated) continue
      if (inflated.data.length !== length) {
        throw new InternalError(\`Inflated object size is different from that stated in packfile.\`)
      }
      // Backtrack parser to where deflated data ends (all of it in the last chunk)
      await reader.undo();
      await reader.read(chunk.length - (input.length - inflated.consumed));
      const end = reader.tell();
      await onData({ data: inflated.data, type, num: numObjects, offset, end, reference, ofs });
      break
    }`],
  ["the copy of every chunk a StreamReader reads (the pack, whole, and each HTTP chunk of it)",
    `      value = Buffer.from(value);`,
    `      value = __nativeInflate.asBuffer(value);`],
  ["the fetch's copy of the pack it has just collected",
    `  const packfile = Buffer.from(await collect(response.packfile));`,
    `  const packfile = __nativeInflate.asBuffer(await collect(response.packfile));`],
  ["shasum's SHA-1 (crypto.subtle, one asynchronous call per object)",
    `let supportsSubtleSHA1 = null;`,
    `let supportsSubtleSHA1 = false;   // node:crypto's createHash, synchronous`],
  ["the pack indexer's SHA-1 of each object (of a copy with its header in front)",
    `      o.oid = await shasum(GitObject.wrap(resolved));`,
    `      o.oid = __nativeInflate.hashObject(resolved.type, resolved.object);`],
  ["the pack indexer's CRC-32 (the crc-32 package, in JavaScript)",
    `      const crc = crc32.buf(pack.slice(start, end)) >>> 0;`,
    `      const crc = __nativeInflate.crc32(pack.subarray(start, end));`],
];

/** isomorphic-git's index.cjs with native inflate; throws naming each pattern not found once. */
export function patchIsomorphicGit(source: string, inflateModule = INFLATE_MODULE): string {
  const missing: string[] = [];
  let out = source;
  for (const [what, from, to] of EDITS) {
    const at = out.indexOf(from);
    if (at < 0 || out.indexOf(from, at + 1) >= 0) { missing.push(what); continue; }
    out = out.slice(0, at) + to + out.slice(at + from.length);
  }
  if (missing.length) {
    throw new Error(`scripts/native-inflate.ts: isomorphic-git's index.cjs no longer has ${missing.join("; ")} (as this patch expects it, once); isomorphic-git was upgraded: update the patterns in scripts/native-inflate.ts to the new code, or drop the patch if it now inflates natively`);
  }
  return `var __nativeInflate = require(${JSON.stringify(inflateModule)});\n${out}`;
}

/** The Bun.build plugin; `patched()` says how many files it patched (the build checks it is 1). */
export function nativeInflatePlugin(): BunPlugin & { patched: () => number } {
  let count = 0;
  return {
    name: "isomorphic-git-native-inflate",
    patched: () => count,
    setup(build) {
      build.onLoad({ filter: /[\\/]isomorphic-git[\\/]index\.(c?js|mjs)$/ }, async (args) => {
        if (!args.path.endsWith(".cjs")) throw new Error(`scripts/native-inflate.ts: the build loads ${args.path}, the patch expects isomorphic-git's index.cjs; update scripts/native-inflate.ts`);
        count++;
        return { contents: patchIsomorphicGit(await Bun.file(args.path).text()), loader: "js" };
      });
    },
  };
}
