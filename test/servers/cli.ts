// Shared by the stand-ins' command lines: parse flags with node:util, print {url} as one JSON line,
// serve until SIGTERM/SIGINT, and exit 2 with a sentence on a bad command line.
import { parseArgs, type ParseArgsConfig } from "node:util";

export function serveFromCli<T extends NonNullable<ParseArgsConfig["options"]>>(
  name: string,
  options: T,
  start: (values: ReturnType<typeof parseArgs<{ options: T; strict: true }>>["values"]) => Promise<{ url: string; stop(): Promise<void> }>,
): void {
  (async () => {
    try {
      const { values } = parseArgs({ args: process.argv.slice(2), options, strict: true });
      const server = await start(values);
      console.log(JSON.stringify({ url: server.url }));
      const quit = () => void server.stop().then(() => process.exit(0));
      process.on("SIGTERM", quit);
      process.on("SIGINT", quit);
    } catch (e) {
      console.error(`${name} stand-in: ${e instanceof Error ? e.message : String(e)}; see docs/stand-ins.md`);
      process.exit(2);
    }
  })();
}

/** The first line a child writes to stdout (a stand-in's {url}). */
export async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return text.split("\n")[0] ?? "";
}
