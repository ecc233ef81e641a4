// plan/, manifest/, fleet/, the trust verdict, secrets/plan.ts, front/routes.ts and front/http1.ts stay pure: no I/O imports, no clock, no randomness.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "../../agent");
const PURE = ["plan", "manifest", "fleet"];
/** Pure planners inside folders that also hold effects. */
const PURE_FILES = ["trust/verdict.ts", "trust/floor.ts", "secrets/plan.ts", "front/routes.ts", "front/http1.ts"];
const FORBIDDEN_IMPORT = /^(node:|bun|fs$|child_process|net$|http|os$|path$)|\/(cloud|host|supervisor|source|converge|state|loop|cli)\//;
const FORBIDDEN_CALL = /\b(Date\.now|Math\.random|new Date\(\)|process\.(env|argv|cwd)|Bun\.)/;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

function imports(src: string): string[] {
  return [...src.matchAll(/(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)]
    .map((m) => m[1] ?? m[2]!);
}

describe("pure core", () => {
  for (const dir of PURE) {
    const list = dir.endsWith(".ts") ? [join(ROOT, dir)] : files(join(ROOT, dir));
    test(`${dir}/ has source files to check`, () => expect(list.length).toBeGreaterThan(0));
    for (const f of list) {
      test(`${dir}/${f.slice(join(ROOT, dir).length + 1)} imports and calls nothing impure`, () => {
        const src = readFileSync(f, "utf8");
        expect(imports(src).filter((i) => FORBIDDEN_IMPORT.test(i))).toEqual([]);
        expect(src.split("\n").filter((l) => FORBIDDEN_CALL.test(l) && !l.trim().startsWith("//"))).toEqual([]);
      });
    }
  }
  for (const f of PURE_FILES) {
    test(`${f} imports and calls nothing impure`, () => {
      const src = readFileSync(join(ROOT, f), "utf8");
      expect(imports(src).filter((i) => FORBIDDEN_IMPORT.test(i) || !/^\.\/(verdict|signers|floor)\.ts$|^\.\.\/manifest\/(schema|problem)\.ts$/.test(i))).toEqual([]);
      expect(src.split("\n").filter((l) => FORBIDDEN_CALL.test(l) && !l.trim().startsWith("//"))).toEqual([]);
    });
  }
  test("the scanner catches an impure import", () => {
    expect(imports(`import fs from "node:fs";\nimport { x } from "../host/exec.ts";`).filter((i) => FORBIDDEN_IMPORT.test(i)))
      .toEqual(["node:fs", "../host/exec.ts"]);
  });
});
