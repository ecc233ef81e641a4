// isomorphic-git's fetch speaks protocol v1 only: it starts with a GET of the whole ref
// advertisement (every branch, tag and pull request ref: 649 KB at 10,000 refs), although the
// agent only ever fetches a commit by its id. This HttpClient answers that GET with the server's
// own first advertised line (its capabilities) and passes the pack request through unchanged.
// Valid only for fetches by commit id: the refs a fetch by name would look for are not there.
import type { GitHttpRequest, GitHttpResponse, HttpClient } from "isomorphic-git";

export interface AdvertCache extends HttpClient {
  /** Drop the remembered line: the next fetch asks the server again (after any failure). */
  forget(): void;
  /** Whether a fetch would be answered without the advertisement now. */
  remembered(): boolean;
}

const SERVICE = "git-upload-pack";
const enc = new TextEncoder();
const pkt = (s: string) => enc.encode((s.length + 4).toString(16).padStart(4, "0") + s);
const FLUSH = enc.encode("0000");

/** Wrap `inner`: the first v1 discovery goes to the server; later ones reuse its first line. */
export function advertCache(inner: HttpClient): AdvertCache {
  let first: string | null = null;   // "<oid> <ref>\0<capabilities>\n", as the server sent it
  // The server wanted credentials: a discovery without them is answered 401, as the server would,
  // so isomorphic-git asks onAuth (a fresh token) and sends it with the pack request too.
  let authed = false;
  const hasAuth = (req: GitHttpRequest) => Object.keys(req.headers ?? {}).some((k) => k.toLowerCase() === "authorization");
  return {
    forget() { first = null; },
    remembered: () => first !== null,
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const discovery = (req.method ?? "GET") === "GET" && req.url.endsWith(`/info/refs?service=${SERVICE}`);
      if (!discovery) {
        const res = await inner.request(req);
        if (res.statusCode !== 200) first = null;
        return res;
      }
      if (first !== null && authed && !hasAuth(req)) {
        return {
          url: req.url, method: "GET", statusCode: 401, statusMessage: "Unauthorized",
          headers: { "www-authenticate": 'Basic realm="git"' }, body: once(new Uint8Array()),
        };
      }
      if (first !== null) {
        const body = concat([pkt(`# service=${SERVICE}\n`), FLUSH, pkt(first), FLUSH]);
        return {
          url: req.url, method: "GET", statusCode: 200, statusMessage: "OK",
          headers: { "content-type": `application/x-${SERVICE}-advertisement` }, body: once(body),
        };
      }
      const res = await inner.request(req);
      if (res.statusCode !== 200 || !res.body) return res;
      const bytes = await collect(res.body);
      first = firstRefLine(bytes);
      authed = hasAuth(req);
      return { ...res, body: once(bytes) };
    },
  };
}

/** The first ref line of a v1 advertisement, or null (v2, an empty repository, anything odd). */
export function firstRefLine(bytes: Uint8Array): string | null {
  const dec = new TextDecoder();
  let at = 0;
  const lines: string[] = [];
  while (at + 4 <= bytes.length && lines.length < 2) {
    const n = parseInt(dec.decode(bytes.subarray(at, at + 4)), 16);
    if (Number.isNaN(n)) return null;
    if (n === 0) { at += 4; continue; }
    if (n < 4 || at + n > bytes.length) return null;
    lines.push(dec.decode(bytes.subarray(at + 4, at + n)));
    at += n;
  }
  const [service, line] = lines;
  if (service?.replace(/\n$/, "") !== `# service=${SERVICE}` || !line) return null;
  const nul = line.indexOf("\0");
  if (nul < 0 || !/^[0-9a-f]{40} \S+$/.test(line.slice(0, nul)) || line.startsWith("0".repeat(40))) return null;
  return line.endsWith("\n") ? line : line + "\n";
}

async function collect(it: AsyncIterableIterator<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.byteLength; }
  return out;
}

function once(bytes: Uint8Array): AsyncIterableIterator<Uint8Array> {
  let done = false;
  return {
    async next() {
      if (done) return { done: true, value: undefined };
      done = true;
      return { done: false, value: bytes };
    },
    async return() { done = true; return { done: true, value: undefined }; },
    [Symbol.asyncIterator]() { return this; },
  };
}
