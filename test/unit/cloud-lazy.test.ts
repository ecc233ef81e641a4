// The AWS SDK loads only when a call needs it: no file of the agent imports it statically except
// through cloud/sdk.ts (type-only imports are erased and cost nothing).
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "../../agent");
const files = (dir: string): string[] => readdirSync(dir).flatMap((f) => {
  const p = join(dir, f);
  return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
});
/** Value imports (not `import type`) of @aws-sdk packages: static ones, and dynamic ones. */
const sdkImports = (src: string) => ({
  static: [...src.matchAll(/^\s*import\s+(?!type\s)[^;]*?from\s+["'](@aws-sdk\/[^"']+)["']/gm)].map((m) => m[1]!),
  dynamic: [...src.matchAll(/import\(\s*["'](@aws-sdk\/[^"']+)["']\s*\)/g)].map((m) => m[1]!),
});

test("no agent file imports the AWS SDK statically; only cloud/sdk.ts loads it, on demand", () => {
  const found: Record<string, { static: string[]; dynamic: string[] }> = {};
  for (const f of files(ROOT)) {
    const i = sdkImports(readFileSync(f, "utf8"));
    if (i.static.length || i.dynamic.length) found[f.slice(ROOT.length + 1)] = i;
  }
  expect(Object.entries(found).filter(([, i]) => i.static.length)).toEqual([]);
  expect(Object.keys(found)).toEqual(["cloud/sdk.ts"]);
  expect(found["cloud/sdk.ts"]!.dynamic.sort()).toEqual(["@aws-sdk/client-dynamodb", "@aws-sdk/client-ec2", "@aws-sdk/client-elastic-load-balancing-v2", "@aws-sdk/client-secrets-manager", "@aws-sdk/client-ssm", "@aws-sdk/ec2-metadata-service"]);
});

test("the scanner tells a value import from a type-only one", () => {
  expect(sdkImports(`import { EC2Client } from "@aws-sdk/client-ec2";\nimport type { Filter } from "@aws-sdk/client-ec2";`).static)
    .toEqual(["@aws-sdk/client-ec2"]);
});
