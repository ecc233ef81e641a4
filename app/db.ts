// The sample store: a counter kept in DATA_DIR/counter (the db role's volume), over HTTP.
// GET / -> the count, POST / -> count + 1. Run: DATA_DIR=/data PORT=7070 bun app/db.ts
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { log, release } from "./release.ts";

const dir = process.env.DATA_DIR ?? "data";
const file = join(dir, "counter");
mkdirSync(dir, { recursive: true });
let count = existsSync(file) ? Number(readFileSync(file, "utf8")) || 0 : 0;

function save(): void {
  writeFileSync(`${file}.tmp`, String(count));
  renameSync(`${file}.tmp`, file);   // atomic: a crash never leaves half a number
}

const server = Bun.serve({
  port: Number(process.env.PORT ?? 7070),
  hostname: process.env.HOST ?? "0.0.0.0",
  fetch(req) {
    if (req.method === "POST") { count++; save(); }
    return new Response(`${count}\n`);
  },
});
log("db", `listening on :${server.port}, ${file} = ${count}, release ${release()}`);

process.on("SIGTERM", async () => {
  await server.stop();
  log("db", "SIGTERM: stopped");
  process.exit(0);
});
