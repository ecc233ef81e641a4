// The sample web server: GET /up -> 200 "ok" (the health check), GET / -> the release it runs.
// Run: PORT=8080 bun app/server.ts. Stops cleanly on SIGTERM/SIGINT (finishes open requests).
import { log, release } from "./release.ts";

const port = Number(process.env.PORT ?? 8080);
const started = new Date().toISOString();

const server = Bun.serve({
  port,
  hostname: process.env.HOST ?? "0.0.0.0",
  fetch(req) {
    const url = new URL(req.url);
    if (url.pathname === "/up") return new Response("ok\n");
    if (url.pathname === "/") {
      const env = process.env.APP_ENV ?? "development";
      return new Response(`sample app\nrelease: ${release()}\nenvironment: ${env}\nstarted: ${started}\npid: ${process.pid}\n`);
    }
    return new Response("not found\n", { status: 404 });
  },
});
log("web", `listening on :${server.port}, release ${release()}`);

for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, async () => {
    log("web", `${sig}: finishing open requests`);
    await server.stop();
    process.exit(0);
  });
}
