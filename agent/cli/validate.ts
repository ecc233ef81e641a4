// `agent validate [DIR]`: checks manifests/ and roles/ of a checkout, for the ops repo's CI.
// Reads the files (at most MAX_FILE_BYTES + 1 of each) and hands them to the pure validateRepo.
import { closeSync, existsSync, openSync, readSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { EXIT, parse, type Command } from "./command.ts";
import { UsageError } from "../core/errors.ts";
import { MAX_FILE_BYTES, formatProblem, type Problem } from "../manifest/parse.ts";
import { validateRepo, type RepoFile } from "../manifest/validate.ts";

const help = `Usage: agent validate [DIR] [--json]

Checks every manifests/*.yaml and roles/*.yaml of the checkout in DIR (default: the current
directory): each file against its schema, and the rules between them (a manifest's roles
exist, every volume a role declares is bound, address: true roles have a pool).

Prints one line per problem to stdout, "FILE:LINE:COLUMN: field.path: what is wrong",
then advice as "...: warning: ..." lines (a setup step with inputs but no outputs cannot be
reused) and a summary "N files, M problems". It checks the tree as it is on disk: a manifest's
commit may pin roles/ that differ from this checkout.

Exit status: 0 when every file is valid (warnings or not), 1 on any problem, 2 on a usage error
(DIR missing, or it has neither manifests/ nor roles/).

Options:
  --json             print {files, problems: [{file, line, column, path, message}]} instead
                     (and warnings: [...] in the same shape when there are any)
  -h, --help         show this help

Examples:
  agent validate                 # in the ops repository, before pushing
  agent validate ops --json      # machine-readable, for a bot
`;

/** The checkout's ops files, read for validation; paths are relative to `dir`. */
export function readOpsFiles(dir: string): RepoFile[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UsageError(`${dir} is not a directory: pass the root of a checkout that has manifests/ and roles/`);
  }
  const dirs = ["manifests", "roles"].filter((d) => existsSync(join(dir, d)) && statSync(join(dir, d)).isDirectory());
  if (dirs.length === 0) {
    throw new UsageError(`${dir} has neither manifests/ nor roles/: pass the root of the ops checkout`);
  }
  return dirs.flatMap((d) =>
    readdirSync(join(dir, d))
      .filter((f) => /\.ya?ml$/.test(f) && statSync(join(dir, d, f)).isFile())
      .sort()
      .map((f) => ({ path: `${d}/${f}`, text: readHead(join(dir, d, f)), size: statSync(join(dir, d, f)).size })));
}

/** The file's bytes, at most MAX_FILE_BYTES + 1 of them: enough to tell that it is too large. */
function readHead(path: string): string | Uint8Array {
  const size = statSync(path).size;
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(Math.min(size, MAX_FILE_BYTES + 1));
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Validate the checkout in `dir`; problems name files as `dir/manifests/...` (or relative when dir is "."). */
export function validateDir(dir: string): { files: number; problems: Problem[]; warnings: Problem[] } {
  const files = readOpsFiles(dir);
  const warnings: Problem[] = [];
  const problems = validateRepo(files, warnings).map((p) => ({ ...p, file: join(dir, p.file) }));
  return { files: files.length, problems, warnings: warnings.map((p) => ({ ...p, file: join(dir, p.file) })) };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

export const validate: Command = {
  name: "validate",
  summary: "check manifests/ and roles/ of a checkout",
  help,
  async run(argv) {
    const a = parse(argv, { json: { type: "boolean" } }, true);
    if (a.positionals.length > 1) throw new UsageError(`expected at most one DIR, got ${a.positionals.length}`);
    const { files, problems, warnings } = validateDir(a.positionals[0] ?? ".");
    if (a.values.json) {
      process.stdout.write(JSON.stringify({ files, problems, ...(warnings.length ? { warnings } : {}) }, null, 2) + "\n");
    } else {
      for (const p of problems) process.stdout.write(formatProblem(p) + "\n");
      for (const w of warnings) process.stdout.write(formatProblem(w) + "\n");   // advice: the exit status ignores them
      process.stdout.write(`${plural(files, "file")}, ${plural(problems.length, "problem")}${warnings.length ? `, ${plural(warnings.length, "warning")}` : ""}\n`);
    }
    return problems.length ? EXIT.failed : EXIT.ok;
  },
};

