// How to start this agent again: the binary itself, or bun with agent/main.ts when not compiled.
import { fileURLToPath } from "node:url";

const isCompiled = () => Bun.main.startsWith("/$bunfs/");
export const selfCommand = (): string[] => isCompiled()
  ? [process.execPath] : [process.execPath, fileURLToPath(new URL("../main.ts", import.meta.url))];
