// Which of the front's threads go to nice 19 (agent/front/threads.ts), as a table.
import { expect, test } from "bun:test";
import { helpersToLower, type Task } from "../../agent/front/threads.ts";

const t = (tid: number, name: string): Task => ({ tid, name });
const MAIN = 100;

test.each([
  ["the compiler, warm-up and allocator threads", [t(100, "bun"), t(101, "JITWorker"), t(102, "JSCWarmUp"), t(103, "mi-scavenger")], [], [101, 102, 103]],
  ["never the request loop, whatever its name", [t(100, "JITWorker"), t(101, "JITWorker")], [], [101]],
  ["the collector and the I/O pool keep their priority", [t(101, "HeapHelper"), t(102, "Bun Pool 0"), t(103, "Heap Helper Thread")], [], []],
  ["a thread already lowered is left alone", [t(101, "JITWorker"), t(102, "JITWorker")], [101], [102]],
  ["a truncated name (comm is 15 bytes) still matches by its start", [t(101, "JITWorker-longer")], [], [101]],
  ["no threads (no /proc)", [], [], []],
] as const)("%s", (_what, tasks, lowered, want) => {
  expect(helpersToLower(tasks, MAIN, new Set(lowered)).map((x) => x.tid)).toEqual([...want]);
});
