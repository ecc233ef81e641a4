// A smart-HTTP git server for tests and the demo: a Bun.serve CGI bridge in front of the real
// `git http-backend`, with fault injection (down, fixed status, delay, no Git-Protocol) and a
// request log.
// Listens on 127.0.0.1 only. Run standalone: `bun test/servers/git.ts --port 0 --root DIR`.
import { serveFromCli } from "./cli.ts";

export interface GitRequest { method: string; path: string; status: number; bytesOut: number }

export interface GitServer {
  /** Base URL; a repo at <root>/<name>.git is served at `${url}/<name>.git`. */
  url: string;
  port: number;
  requests: GitRequest[];
  /** stripGitProtocol: drop the Git-Protocol header, as a proxy or an old server does (v1 only). */
  faults: { down: boolean; status: number | null; delayMs: number; stripGitProtocol: boolean };
  /** The password required (HTTP Basic, any username), or undefined for none; change it at any time to rotate. */
  token: string | undefined;
  stop(): Promise<void>;
}

const BACKEND = "/usr/lib/git-core/git-http-backend";

/** Start the server; `token` set => HTTP Basic auth with that password (any username), else 401. */
export async function startGitServer(opts: { root: string; token?: string; port?: number }): Promise<GitServer> {
  const requests: GitRequest[] = [];
  const faults: GitServer["faults"] = { down: false, status: null, delayMs: 0, stripGitProtocol: false };
  const self = { token: opts.token };
  const log = (req: Request, path: string, res: Response, bytesOut: number) => {
    requests.push({ method: req.method, path, status: res.status, bytesOut });
    return res;
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: opts.port ?? 0,
    idleTimeout: 0,
    async fetch(req) {
      const u = new URL(req.url);
      if (faults.delayMs > 0) await Bun.sleep(faults.delayMs);
      if (faults.down) return log(req, u.pathname, new Response("down\n", { status: 503, headers: { connection: "close" } }), 5);
      if (faults.status !== null) return log(req, u.pathname, new Response(`status ${faults.status}\n`, { status: faults.status }), 0);
      if (self.token !== undefined && !authorized(req.headers.get("authorization"), self.token)) {
        return log(req, u.pathname, new Response("authentication required\n", {
          status: 401, headers: { "www-authenticate": 'Basic realm="git"' },
        }), 0);
      }
      const body = req.method === "POST" ? new Uint8Array(await req.arrayBuffer()) : new Uint8Array();
      const env: Record<string, string> = {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        GIT_PROJECT_ROOT: opts.root,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: decodeURIComponent(u.pathname),
        QUERY_STRING: u.search.replace(/^\?/, ""),
        REQUEST_METHOD: req.method,
        CONTENT_TYPE: req.headers.get("content-type") ?? "",
        CONTENT_LENGTH: String(body.length),
        REMOTE_ADDR: "127.0.0.1",
        GIT_CONFIG_NOSYSTEM: "1",
        HOME: opts.root,
      };
      const gp = req.headers.get("git-protocol");
      if (gp && !faults.stripGitProtocol) env.GIT_PROTOCOL = gp;
      const enc = req.headers.get("content-encoding");
      if (enc) env.HTTP_CONTENT_ENCODING = enc;
      const p = Bun.spawn([BACKEND], { env, stdin: body, stdout: "pipe", stderr: "pipe" });
      const [out] = await Promise.all([new Response(p.stdout).arrayBuffer(), new Response(p.stderr).text(), p.exited]);
      const res = cgiResponse(new Uint8Array(out));
      return log(req, u.pathname, res.response, res.bodyLength);
    },
  });
  const port = server.port!;
  return Object.assign(self, {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    faults,
    async stop() { await server.stop(true); },
  });
}

function authorized(header: string | null, token: string): boolean {
  if (!header?.startsWith("Basic ")) return false;
  const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
  const i = decoded.indexOf(":");
  return i >= 0 && decoded.slice(i + 1) === token;
}

/** Split CGI output into headers and body; honour `Status:`. */
function cgiResponse(out: Uint8Array): { response: Response; bodyLength: number } {
  let end = -1, sep = 0;
  for (let i = 0; i < out.length - 1; i++) {
    if (out[i] === 10 && out[i + 1] === 10) { end = i; sep = 2; break; }
    if (out[i] === 13 && out[i + 1] === 10 && out[i + 2] === 13 && out[i + 3] === 10) { end = i; sep = 4; break; }
  }
  if (end < 0) return { response: new Response("bad gateway: no CGI headers\n", { status: 502 }), bodyLength: 0 };
  const head = new TextDecoder().decode(out.subarray(0, end));
  const body = out.subarray(end + sep);
  const headers = new Headers();
  let status = 200;
  for (const line of head.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const k = line.slice(0, i).trim(), v = line.slice(i + 1).trim();
    if (k.toLowerCase() === "status") status = parseInt(v, 10) || 200;
    else headers.append(k, v);
  }
  return { response: new Response(body, { status, headers }), bodyLength: body.length };
}

if (import.meta.main) {
  serveFromCli("git", { root: { type: "string" }, port: { type: "string", default: "0" }, token: { type: "string" } }, (v) => {
    if (!v.root) throw new Error("--root DIR is required (the directory holding <name>.git repositories)");
    return startGitServer({ root: v.root, port: Number(v.port), token: v.token });
  });
}
