// agent/source/inflate.ts (node:zlib for isomorphic-git's pack reader and indexer) and the build
// patch that points isomorphic-git at it (scripts/native-inflate.ts), against the installed copy.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { deflateSync } from "node:zlib";
import { asBuffer, crc32, hashObject, inflate, inflateObject, zlibHandle } from "../../agent/source/inflate.ts";
import { patchIsomorphicGit } from "../../scripts/native-inflate.ts";

const a = deflateSync(Buffer.from("first object ".repeat(500)));
const b = deflateSync(Buffer.from("second"));
const pack = Buffer.concat([a, b, Buffer.from("trailer bytes")]);

describe("inflate", () => {
  test("inflates the stream at the start of a view that runs on past its end", () => {
    expect(inflate(pack).toString()).toBe("first object ".repeat(500));
    expect(inflate(pack.subarray(a.length)).toString()).toBe("second");
  });
  test("corrupt data is an error", () => {
    expect(() => inflate(Buffer.from("not zlib at all"))).toThrow();
  });
});

describe("inflateObject", () => {
  test("gives the object and the bytes its stream took", () => {
    const r = inflateObject(pack)!;
    expect(r.data.toString()).toBe("first object ".repeat(500));
    expect(r.consumed).toBe(a.length);
    const r2 = inflateObject(pack.subarray(r.consumed))!;
    expect(r2.data.toString()).toBe("second");
    expect(r2.consumed).toBe(b.length);
  });
  test("null when the input ends before the stream (the next chunk is needed)", () => {
    expect(inflateObject(a.subarray(0, a.length - 3))).toBeNull();
    expect(inflateObject(new Uint8Array(0))).toBeNull();
  });
  test("corrupt data is an error, not a wait for more", () => {
    expect(() => inflateObject(Buffer.from("not zlib at all"))).toThrow();
  });
});

describe("with the size the pack header states (one reused zlib stream)", () => {
  const first = "first object ".repeat(500);
  test("this runtime has node:zlib's handle, so the fast path is the one taken", () => {
    expect(zlibHandle()).toBe(true);
  });
  test("gives the object and the bytes its stream took, from views into a larger buffer", () => {
    const r = inflateObject(pack, first.length)!;
    expect(r.data.toString()).toBe(first);
    expect(r.consumed).toBe(a.length);
    const r2 = inflateObject(pack.subarray(a.length), 6)!;
    expect([r2.data.toString(), r2.consumed]).toEqual(["second", b.length]);
    expect(inflate(pack.subarray(a.length), 6).toString()).toBe("second");
    const empty = deflateSync(Buffer.alloc(0));
    expect(inflateObject(Buffer.concat([empty, b]), 0)).toEqual({ data: Buffer.alloc(0), consumed: empty.length });
  });
  test("null when the input ends inside the stream; corrupt data and a wrong size are errors", () => {
    expect(inflateObject(a.subarray(0, a.length - 3), first.length)).toBeNull();
    expect(() => inflateObject(Buffer.from("not zlib at all"), 10)).toThrow(/zlib/);
    expect(() => inflateObject(pack, first.length - 1)).toThrow(/more than the 6499 bytes/);
    expect(() => inflate(pack, first.length + 1)).not.toThrow();   // shorter than stated: the callers compare the length
    expect(inflateObject(pack, first.length)!.data.toString()).toBe(first);   // the stream is usable after an error
  });
});

describe("asBuffer", () => {
  test("a Buffer over the same bytes, not a copy; strings are encoded", () => {
    const u = new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4);
    const b = asBuffer(u);
    expect(Buffer.isBuffer(b)).toBe(true);
    expect([...b]).toEqual([1, 2, 3]);
    u[0] = 7;
    expect(b[0]).toBe(7);
    expect(asBuffer("ab").toString()).toBe("ab");
  });
});

describe("hashObject and crc32", () => {
  test("a git object's id, as `git hash-object` gives it", () => {
    expect(hashObject("blob", Buffer.from("hello\n"))).toBe("ce013625030ba8dba906f756967f9e9ca394464a");
    expect(hashObject("blob", new Uint8Array(0))).toBe("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    expect(hashObject("tree", new Uint8Array(0))).toBe("4b825dc642cb6eb9a060e54bf8d69288fbee4904");
  });
  test("CRC-32 as a pack index stores it (unsigned)", () => {
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});

describe("patchIsomorphicGit", () => {
  const file = createRequire(import.meta.url).resolve("isomorphic-git").replace(/index\.js$/, "index.cjs");
  const source = readFileSync(file, "utf8");
  test("applies to the installed isomorphic-git: no pako inflate left in the pack paths", () => {
    expect(file.endsWith("index.cjs")).toBe(true);
    const out = patchIsomorphicGit(source, "/x/inflate.ts");
    expect(out.startsWith(`var __nativeInflate = require("/x/inflate.ts");`)).toBe(true);
    expect(out).not.toContain("new pako.Inflate()");
    expect(out).not.toContain("pako.inflate(buffer)");
    expect(out).toContain("__nativeInflate.inflateObject(input, length)");
    expect(out).toContain("object = __nativeInflate.inflate(buffer, length);");
    expect(out).toContain("return __nativeInflate.inflate(buffer)");
    expect(out).toContain("pako.deflate(buffer)");   // writing objects is untouched
    expect(out).toContain("let supportsSubtleSHA1 = false;");
    expect(out).toContain("o.oid = __nativeInflate.hashObject(resolved.type, resolved.object);");
    expect(out).toContain("const crc = __nativeInflate.crc32(pack.subarray(start, end));");
    expect(out).not.toContain("crc32.buf(");
    expect(out).toContain("value = __nativeInflate.asBuffer(value);");
    expect(out).toContain("const packfile = __nativeInflate.asBuffer(await collect(response.packfile));");
  });
  test("a pattern missing after an upgrade fails, naming it", () => {
    const moved = source.replace("const inflator = new pako.Inflate();", "const inflator = new pako.Inflate({});");
    expect(() => patchIsomorphicGit(moved)).toThrow(/streaming inflate of the pack indexer \(listpack\).*update the patterns/);
  });
  test("each pattern is checked: the hash and CRC sites too", () => {
    expect(() => patchIsomorphicGit(source.replace("let supportsSubtleSHA1 = null;", "let supportsSubtleSHA1;"))).toThrow(/shasum's SHA-1/);
    expect(() => patchIsomorphicGit(source.replace("crc32.buf(pack.slice(start, end))", "crc32.buf(pack.subarray(start, end))"))).toThrow(/CRC-32/);
    expect(() => patchIsomorphicGit(source.replace("o.oid = await shasum(GitObject.wrap(resolved));", "o.oid = await hash(resolved);"))).toThrow(/SHA-1 of each object/);
  });
  test("a pattern found twice fails too", () => {
    const twice = source + "\n    object = Buffer.from(await inflate(buffer));\n";
    expect(() => patchIsomorphicGit(twice)).toThrow(/readSlice's copy/);
  });
});
