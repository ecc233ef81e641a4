// The agent carries the Bun runtime: when the node has no `bun` of its own, setup steps, hooks
// and processes get the agent's (a `bun` shim that runs the agent binary with BUN_BE_BUN=1).
// An installed bun always wins: the shim's directory goes at the end of PATH.
import { chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { writeFileAtomic } from "./files.ts";

/** True inside the compiled binary (its modules live in Bun's embedded file system). */
export const isCompiled = (): boolean => Bun.main.startsWith("/$bunfs/");

/**
 * Write <binDir>/bun (idempotent) and return the PATH that ends with binDir. Outside the compiled
 * binary (tests from source, development) the bun that runs us is used instead.
 */
export function offerRuntime(binDir: string, path = process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin"): string {
  const shim = join(binDir, "bun");
  const text = isCompiled()
    ? `#!/bin/sh\n# The agent's own Bun runtime, offered to roles when the node has no bun.\nBUN_BE_BUN=1 exec '${process.execPath}' "$@"\n`
    : `#!/bin/sh\nexec '${process.execPath}' "$@"\n`;
  mkdirSync(binDir, { recursive: true, mode: 0o755 });
  if (!existsSync(shim) || readFileSync(shim, "utf8") !== text) writeFileAtomic(shim, text, 0o755);
  chmodSync(shim, 0o755);
  const parts = path.split(delimiter).filter((p) => p && p !== binDir);
  return [...parts, binDir].join(delimiter);
}
