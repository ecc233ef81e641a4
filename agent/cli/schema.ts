// `agent schema [manifest|role|config]`: JSON Schema (draft 2020-12) of the three files, for
// editors (yaml-language-server) and other tools. Generated from the one schema the agent uses.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { EXIT, parse, type Command } from "./command.ts";
import { UsageError } from "../core/errors.ts";
import { SCHEMAS, type FileKind } from "../manifest/schema.ts";

const KINDS = Object.keys(SCHEMAS) as FileKind[];

const help = `Usage: agent schema [manifest|role|config] [--out DIR]

Prints the JSON Schema (draft 2020-12) of one file format: manifest (manifests/<env>.yaml),
role (roles/<role>.yaml) or config (/etc/agent/agent.yaml). Without a name it prints one
JSON object {manifest, role, config} holding all three. With --out DIR it writes
DIR/manifest.json, DIR/role.json and DIR/config.json instead.

Point your editor at a schema with a first line in the YAML file, for yaml-language-server
(VS Code's YAML extension, Neovim, Helix):
  # yaml-language-server: $schema=../schema/manifest.json

Options:
  --out DIR          write the three schemas into DIR (created when missing)
  -h, --help         show this help

Examples:
  agent schema --out schema                  # in the ops repository; commit schema/
  agent schema manifest > manifest.schema.json
`;

/** The JSON Schema of one file format: input side (defaults are optional), with title and $id. */
export function jsonSchema(kind: FileKind): Record<string, unknown> {
  const s = z.toJSONSchema(SCHEMAS[kind], { io: "input", target: "draft-2020-12" }) as Record<string, unknown>;
  const { $schema, ...rest } = s;
  return { $schema, $id: `${kind}.json`, ...rest };
}

export const schema: Command = {
  name: "schema",
  summary: "JSON Schema of the three files, for editors",
  help,
  async run(argv) {
    const a = parse(argv, { out: { type: "string" } }, true);
    if (a.positionals.length > 1) throw new UsageError(`expected at most one of ${KINDS.join(", ")}`);
    const kind = a.positionals[0];
    if (kind !== undefined && !KINDS.includes(kind as FileKind)) {
      throw new UsageError(`unknown file format '${kind}': expected ${KINDS.join(", ")}`);
    }
    const kinds = kind ? [kind as FileKind] : KINDS;
    if (a.values.out) {
      mkdirSync(a.values.out, { recursive: true });
      for (const k of kinds) writeFileSync(join(a.values.out, `${k}.json`), JSON.stringify(jsonSchema(k), null, 2) + "\n");
      process.stdout.write(`wrote ${kinds.map((k) => join(a.values.out!, `${k}.json`)).join(", ")}\n`);
      return EXIT.ok;
    }
    const out = kind ? jsonSchema(kind as FileKind) : Object.fromEntries(KINDS.map((k) => [k, jsonSchema(k)]));
    process.stdout.write(JSON.stringify(out, null, 2) + "\n");
    return EXIT.ok;
  },
};
