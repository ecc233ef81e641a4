// agent/source/inflate.ts (node:zlib for isomorphic-git's pack reader and indexer) and the build
// patch that points isomorphic-git at it (scripts/native-inflate.ts), against the installed copy.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { deflateSync } from "node:zlib";
import { inflate, inflateObject } from "../../agent/source/inflate.ts";
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

describe("patchIsomorphicGit", () => {
  const file = createRequire(import.meta.url).resolve("isomorphic-git").replace(/index\.js$/, "index.cjs");
  const source = readFileSync(file, "utf8");
  test("applies to the installed isomorphic-git: no pako inflate left in the pack paths", () => {
    expect(file.endsWith("index.cjs")).toBe(true);
    const out = patchIsomorphicGit(source, "/x/inflate.ts");
    expect(out.startsWith(`var __nativeInflate = require("/x/inflate.ts");`)).toBe(true);
    expect(out).not.toContain("new pako.Inflate()");
    expect(out).not.toContain("pako.inflate(buffer)");
    expect(out).toContain("__nativeInflate.inflateObject(input)");
    expect(out).toContain("return __nativeInflate.inflate(buffer)");
    expect(out).toContain("pako.deflate(buffer)");   // writing objects is untouched
  });
  test("a pattern missing after an upgrade fails, naming it", () => {
    const moved = source.replace("const inflator = new pako.Inflate();", "const inflator = new pako.Inflate({});");
    expect(() => patchIsomorphicGit(moved)).toThrow(/streaming inflate of the pack indexer \(listpack\).*update the patterns/);
  });
  test("a pattern found twice fails too", () => {
    const twice = source + "\n    object = Buffer.from(await inflate(buffer));\n";
    expect(() => patchIsomorphicGit(twice)).toThrow(/readSlice's copy/);
  });
});
