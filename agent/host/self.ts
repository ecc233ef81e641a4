// How to start this agent again: the binary itself, or bun with agent/main.ts when not compiled.
import { isCompiled } from "./runtime.ts";

export const selfCommand = (): string[] => isCompiled()
  ? [process.execPath] : [process.execPath, Bun.fileURLToPath(new URL("../main.ts", import.meta.url))];
