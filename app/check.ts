// A release check the example roles run as a before_cutover hook: every program of the app is
// in the release and parses. Exits 1 (so the cutover does not happen) when one is missing.
import { existsSync } from "node:fs";

const missing = ["app/server.ts", "app/worker.ts", "app/db.ts"].filter((f) => !existsSync(f));
if (missing.length) {
  console.error(`release check: missing ${missing.join(", ")} in ${process.cwd()}`);
  process.exit(1);
}
console.log("release check: ok");
