// The front's helper threads yield to its request loop. The front is one JavaScript thread that
// answers every request, plus threads of the runtime that do deferred work: the JIT compiler
// (JITWorker), start-up compilation (JSCWarmUp) and the allocator's page purge (mi-scavenger). On
// a busy core (the front limited to one, or sharing it with the application), the kernel lets a
// thread that is running finish its slice (about 3 ms) before the woken request loop runs, so a
// request that arrives while the compiler runs waits for it: with the application on the front's
// core, added p99 at 1,000 req/s was 0.99 ms at the default priority and 0.58 ms at nice 19 in the
// same rounds (docs/benchmarks.md, the socket data path). At nice 19 those threads still
// run whenever the core has room, but a woken request loop takes the core from them. The garbage
// collector's threads keep their priority: the request loop waits for them during a collection.
// `os.setPriority` with a thread id sets that one thread's nice value on Linux (setpriority(2) with
// PRIO_PROCESS); through bun:ffi instead, the front's idle RSS was about 1 MB larger.
import { setPriority } from "node:os";
import { threadsOf } from "../host/proc.ts";

/** Thread names (their start, as /proc shows them) whose work no request waits on. */
export const HELPER_THREADS = ["JITWorker", "JSCWarmUp", "mi-scavenger"] as const;
/** The nice value they get: the lowest priority of the normal policy. */
export const HELPER_NICE = 19;

export interface Task { tid: number; name: string }

/** The helper threads of `tasks` not yet lowered; never the request loop's thread (`mainTid`). Pure. */
export function helpersToLower(tasks: readonly Task[], mainTid: number, lowered: ReadonlySet<number>): Task[] {
  return tasks.filter((t) => t.tid !== mainTid && !lowered.has(t.tid) && HELPER_THREADS.some((n) => t.name.startsWith(n)));
}

/**
 * Lowers the helper threads that exist now and remembers them (the runtime starts compiler
 * threads as it needs them, so this runs again from the front's timer). Returns the threads it
 * lowered this time and the errors, by code (a failed call is not retried). Never throws.
 */
export class HelperThreads {
  private readonly lowered = new Set<number>();
  constructor(private readonly mainTid = process.pid) {}

  lower(): { lowered: Task[]; failed: { task: Task; error: string }[] } {
    const tasks = threadsOf();   // empty where there is no /proc
    const live = new Set(tasks.map((t) => t.tid));
    for (const tid of this.lowered) if (!live.has(tid)) this.lowered.delete(tid);
    const todo = helpersToLower(tasks, this.mainTid, this.lowered);
    const out = { lowered: [] as Task[], failed: [] as { task: Task; error: string }[] };
    for (const t of todo) {
      this.lowered.add(t.tid);
      try {
        setPriority(t.tid, HELPER_NICE);
        out.lowered.push(t);
      } catch (e) {
        // a SystemError: its info.code is ESRCH when the thread exited, EACCES without the right
        out.failed.push({ task: t, error: (e as { info?: { code?: string } }).info?.code ?? (e as Error).message });
      }
    }
    return out;
  }
}
