// argv -> the command in cli/; nothing else happens here.
import type { Command } from "./cli/command.ts";
import { EXIT } from "./cli/command.ts";
import { UsageError, errorMessage } from "./core/errors.ts";

// `agent front` lives as long as the node: it loads only its own modules, not the whole agent
// (its idle RSS budget is 40 MB). The build splits chunks, so a dynamic import stays unloaded.
async function commands(name: string | undefined): Promise<Command[]> {
  // `agent run` too: the daemon maps only its own chunks (test/unit/daemon-imports.test.ts).
  if (name === "front") return [(await import("./cli/front.ts")).front];
  if (name === "run") return [(await import("./cli/run.ts")).run];
  return (await import("./cli/index.ts")).COMMANDS;
}

const usage = (COMMANDS: Command[]) => `agent: a GitOps pull agent for EC2 nodes

Usage: agent COMMAND [OPTIONS]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join("\n")}

Run 'agent COMMAND --help' for a command's options and an example.

Example:
  agent validate .           # in the ops repository, before merging
  agent status               # on a node: what runs and why
`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  // Hidden: the daemon's git operations, in a child that serves a tick (agent/source/child.ts).
  if (name === "_source") return (await import("./source/child.ts")).serveSource();
  // Hidden: the daemon's EC2 calls, in a child that serves a converge (agent/cloud/ec2-serve.ts).
  if (name === "_ec2") return (await import("./cloud/ec2-serve.ts")).serveEc2();
  // Hidden: the identity stage's IMDS reads, in a child that serves a tick (agent/cloud/imds-serve.ts).
  if (name === "_imds") return (await import("./cloud/imds-serve.ts")).serveImds();
  // Hidden: the daemon's config, parsed apart so that yaml and zod stay out of it (cli/settings.ts).
  if (name === "_config") return (await import("./cli/config.ts")).serveConfig(rest[0] ?? "");
  const COMMANDS = await commands(name);
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage(COMMANDS));
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === "--version" || name === "-V") return COMMANDS.find((c) => c.name === "version")!.run([]);
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`agent: unknown command '${name}'. Run 'agent --help' for the list.\n`);
    return EXIT.usage;
  }
  // --help anywhere before a lone "--" shows the command's help; the commands never see it.
  const end = rest.indexOf("--");
  if ((end < 0 ? rest : rest.slice(0, end)).some((x) => x === "--help" || x === "-h")) {
    process.stdout.write(cmd.help);
    return EXIT.ok;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`agent ${name}: ${e.message}. Run 'agent ${name} --help'.\n`);
      return EXIT.usage;
    }
    process.stderr.write(`agent ${name}: ${errorMessage(e)}\n`);
    return EXIT.failed;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
