// Objects read straight from the store's packs, for writing a release's files: each pack index
// (.idx v2) is read once, each pack once and whole when an object is first found in it, and
// every object is checked against its id before it is returned. isomorphic-git's readBlob, for
// each blob, first misses a loose object, lists the pack directory and wraps the file system
// again, and keeps every object it inflated after the third. Read-only; loose objects are not
// read here (read() answers null and the caller asks isomorphic-git).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { hashObject, inflate } from "./inflate.ts";

export type ObjectType = "commit" | "tree" | "blob" | "tag";
export interface PackedObject { type: ObjectType; content: Buffer }

const TYPES: Record<number, ObjectType> = { 1: "commit", 2: "tree", 3: "blob", 4: "tag" };
const OFS_DELTA = 6, REF_DELTA = 7;
/** Bytes of delta bases kept, so that a chain's common base is inflated once, not per object. */
const BASE_CACHE_BYTES = 8 * 1024 * 1024;
/** git packs with --depth 50 by default and allows 4,095; a longer chain is a corrupt (looping) one. */
const MAX_CHAIN = 10_000;

interface Pack { name: string; idx: Buffer; count: number; path: string; data: Buffer | null }

export class PackReader {
  private readonly bases = new Map<string, PackedObject>();
  private baseBytes = 0;

  private constructor(private readonly packs: Pack[]) {}

  /** The packs of `gitdir` (none when it has no objects/pack); indexes it cannot read are skipped. */
  static open(gitdir: string): PackReader {
    const dir = join(gitdir, "objects", "pack");
    let names: string[] = [];
    try { names = readdirSync(dir).filter((n) => n.endsWith(".idx")); } catch {}
    const packs: Pack[] = [];
    for (const n of names) {
      const idx = readFileSync(join(dir, n));
      // v2: magic, version, 256 fanout counts; version 1 indexes (no magic) are left to isomorphic-git
      if (idx.length < 8 + 1024 + 40 || idx.readUInt32BE(0) !== 0xff744f63 || idx.readUInt32BE(4) !== 2) continue;
      packs.push({ name: n.replace(/\.idx$/, ".pack"), idx, count: idx.readUInt32BE(8 + 255 * 4), path: join(dir, n.replace(/\.idx$/, ".pack")), data: null });
    }
    return new PackReader(packs);
  }

  /**
   * The object `oid` from a pack, checked against its id; null when no pack has it (or a delta's
   * base is not in a pack). Throws when a pack is corrupt or the object is not what its id says.
   */
  read(oid: string): PackedObject | null {
    const found = this.find(oid);
    if (!found) return null;
    const o = this.readAt(found.pack, found.offset);
    if (!o) return null;
    const id = hashObject(o.type, o.content);
    if (id !== oid) throw new Error(`object ${oid} in ${found.pack.name} hashes to ${id}: the pack is corrupt`);
    return o;
  }

  private find(oid: string): { pack: Pack; offset: number } | null {
    const key = Buffer.from(oid, "hex");
    if (key.length !== 20) return null;
    for (const pack of this.packs) {
      const { idx, count } = pack;
      const first = key[0]!;
      let lo = first ? idx.readUInt32BE(8 + (first - 1) * 4) : 0, hi = idx.readUInt32BE(8 + first * 4);
      const hashes = 8 + 1024;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const at = hashes + mid * 20;
        const c = key.compare(idx, at, at + 20);
        if (c === 0) {
          const offsets = hashes + count * 24;   // after the hashes (20 each) and the CRCs (4 each)
          const small = idx.readUInt32BE(offsets + mid * 4);
          if (!(small & 0x80000000)) return { pack, offset: small };
          const large = offsets + count * 4 + (small & 0x7fffffff) * 8;
          return { pack, offset: Number(idx.readBigUInt64BE(large)) };
        }
        if (c < 0) hi = mid; else lo = mid + 1;
      }
    }
    return null;
  }

  /** The object at `offset` in `pack`, its deltas applied; null when a ref-delta's base is in no pack. */
  private readAt(pack: Pack, offset: number): PackedObject | null {
    const data = pack.data ??= readFileSync(pack.path);
    // Walk down the delta chain to a whole object (or a cached base), then apply the deltas back up.
    const deltas: { delta: Buffer; key: string }[] = [];
    let at = offset;
    let base: PackedObject | null = null;
    for (;;) {
      const key = `${pack.name}:${at}`;
      const cached = this.bases.get(key);
      if (cached) { base = cached; break; }
      if (deltas.length > MAX_CHAIN) throw new Error(`${pack.name}: the delta chain of the object at ${offset} is longer than ${MAX_CHAIN} (or loops)`);
      const h = parseHeader(data, at, pack.name);
      const body = inflateAt(data, h.dataStart, h.size, pack.name, at);
      if (h.type === OFS_DELTA) { deltas.push({ delta: body, key }); at = h.baseOffset!; continue; }
      if (h.type === REF_DELTA) {
        deltas.push({ delta: body, key });
        const found = this.find(h.baseOid!);
        if (!found) return null;
        if (found.pack === pack) { at = found.offset; continue; }
        base = this.readAt(found.pack, found.offset);   // a thin pack's base, in an older pack
        if (!base) return null;
        break;
      }
      const type = TYPES[h.type];
      if (!type) throw new Error(`${pack.name}: object at ${at} has unknown type ${h.type}`);
      base = { type, content: body };
      if (deltas.length) this.keep(key, base);
      break;
    }
    for (let i = deltas.length - 1; i >= 0; i--) {
      base = { type: base.type, content: applyDelta(deltas[i]!.delta, base.content, pack.name) };
      if (i > 0) this.keep(deltas[i]!.key, base);
    }
    return base;
  }

  private keep(key: string, o: PackedObject): void {
    if (o.content.length > BASE_CACHE_BYTES / 4 || this.bases.has(key)) return;
    this.bases.set(key, o);
    this.baseBytes += o.content.length;
    for (const [k, old] of this.bases) {
      if (this.baseBytes <= BASE_CACHE_BYTES) break;
      this.bases.delete(k);
      this.baseBytes -= old.content.length;
    }
  }
}

function parseHeader(data: Buffer, offset: number, name: string) {
  let i = offset;
  if (i >= data.length - 20) throw new Error(`${name}: offset ${offset} is past the end of the pack`);
  let byte = data[i++]!;
  const type = (byte >> 4) & 7;
  let size = byte & 15, shift = 16;
  while (byte & 0x80) { byte = data[i++]!; size += (byte & 0x7f) * shift; shift *= 128; }
  let baseOffset: number | undefined, baseOid: string | undefined;
  if (type === OFS_DELTA) {
    byte = data[i++]!;
    let back = byte & 0x7f;
    while (byte & 0x80) { byte = data[i++]!; back = (back + 1) * 128 + (byte & 0x7f); }
    baseOffset = offset - back;
    if (baseOffset < 12) throw new Error(`${name}: object at ${offset} has a delta base before the pack's start`);
  } else if (type === REF_DELTA) {
    baseOid = data.toString("hex", i, i + 20);
    i += 20;
  }
  return { type, size, dataStart: i, baseOffset, baseOid };
}

function inflateAt(data: Buffer, start: number, size: number, name: string, offset: number): Buffer {
  let out: Buffer;
  try { out = inflate(data.subarray(start, data.length - 20), size); } catch (e) {
    throw new Error(`${name}: object at ${offset} does not inflate (${(e as Error).message}): the pack is corrupt`);
  }
  if (out.length !== size) throw new Error(`${name}: object at ${offset} inflates to ${out.length} bytes, its header says ${size}`);
  return out;
}

/** git's delta format: the base's size, the result's size, then copies from the base and inserts. */
export function applyDelta(delta: Buffer, base: Buffer, name = "delta"): Buffer {
  let i = 0;
  const varint = () => { let v = 0, shift = 1, b: number; do { b = delta[i++]!; v += (b & 0x7f) * shift; shift *= 128; } while (b & 0x80); return v; };
  const baseSize = varint(), size = varint();
  if (baseSize !== base.length) throw new Error(`${name}: a delta expects a base of ${baseSize} bytes, the base has ${base.length}`);
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  while (i < delta.length) {
    const cmd = delta[i++]!;
    if (cmd & 0x80) {
      let off = 0, len = 0;
      if (cmd & 0x01) off |= delta[i++]!;
      if (cmd & 0x02) off |= delta[i++]! << 8;
      if (cmd & 0x04) off |= delta[i++]! << 16;
      if (cmd & 0x08) off += delta[i++]! * 0x1000000;
      if (cmd & 0x10) len |= delta[i++]!;
      if (cmd & 0x20) len |= delta[i++]! << 8;
      if (cmd & 0x40) len |= delta[i++]! << 16;
      if (len === 0) len = 0x10000;
      if (off + len > base.length || o + len > size) throw new Error(`${name}: a delta copies past the end of its base or result`);
      base.copy(out, o, off, off + len);
      o += len;
    } else if (cmd) {
      if (i + cmd > delta.length || o + cmd > size) throw new Error(`${name}: a delta inserts past its end`);
      delta.copy(out, o, i, i + cmd);
      i += cmd;
      o += cmd;
    } else {
      throw new Error(`${name}: a delta has the reserved instruction 0`);
    }
  }
  if (o !== size) throw new Error(`${name}: a delta makes ${o} bytes, it says ${size}`);
  return out;
}
