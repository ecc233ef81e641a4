// The sample worker: logs a line every WORK_INTERVAL_MS (default 5000) and exits 0 on SIGTERM.
// Run: bun app/worker.ts
import { log, release } from "./release.ts";

const every = Number(process.env.WORK_INTERVAL_MS ?? 5000);
let n = 0;
log("worker", `started, release ${release()}, a job every ${every}ms`);
const timer = setInterval(() => log("worker", `job ${++n} done`), every);

for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => {
    clearInterval(timer);
    log("worker", `${sig}: stopping after ${n} jobs`);
    process.exit(0);
  });
}
