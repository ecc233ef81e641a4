// The HTTP client isomorphic-git talks through: global fetch with an idle timeout (no byte for
// timeoutMs => abort, so a hung server fails fast but a large pack still streams) and a byte count.
import type { HttpClient, GitHttpRequest, GitHttpResponse } from "isomorphic-git";

export interface CountingHttp extends HttpClient {
  /** Response body bytes received since creation. */
  bytesIn(): number;
  requests(): number;
}

/** An isomorphic-git HttpClient whose every request aborts after `timeoutMs` without progress. */
export function timedHttp(timeoutMs: number): CountingHttp {
  let bytes = 0, count = 0;
  return {
    bytesIn: () => bytes,
    requests: () => count,
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      count++;
      const ac = new AbortController();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => ac.abort(new TimeoutError(`no answer from the git server within ${timeoutMs}ms`)), timeoutMs);
      };
      arm();
      let body: Uint8Array | undefined;
      if (req.body) body = await collect(req.body as AsyncIterable<Uint8Array>);
      let res: Response;
      try {
        res = await fetch(req.url, { method: req.method ?? "GET", headers: req.headers, body, signal: ac.signal });
      } catch (e) {
        clearTimeout(timer);
        throw ac.signal.aborted ? ac.signal.reason : e;
      }
      const headers: Record<string, string> = {};
      res.headers.forEach((v, k) => { headers[k] = v; });
      if (!res.ok) {
        // isomorphic-git drops the body of a refusal (a 401 before it sends credentials): read
        // it here, so neither the idle timer nor the connection outlives the request.
        let buf: Uint8Array;
        try { buf = new Uint8Array(await res.arrayBuffer()); } finally { clearTimeout(timer); }
        bytes += buf.byteLength;
        return { url: res.url, method: req.method, statusCode: res.status, statusMessage: res.statusText, body: once(buf), headers };
      }
      const reader = res.body?.getReader();
      const iter: AsyncIterableIterator<Uint8Array> = {
        async next() {
          if (!reader) { clearTimeout(timer); return { done: true, value: undefined }; }
          arm();
          try {
            const r = await reader.read();
            if (r.done) clearTimeout(timer); else bytes += r.value.byteLength;
            return r.done ? { done: true, value: undefined } : { done: false, value: r.value };
          } catch (e) {
            clearTimeout(timer);
            throw ac.signal.aborted ? ac.signal.reason : e;
          }
        },
        async return() { clearTimeout(timer); try { reader?.releaseLock(); } catch {} return { done: true, value: undefined }; },
        [Symbol.asyncIterator]() { return this; },
      };
      return { url: res.url, method: req.method, statusCode: res.status, statusMessage: res.statusText, body: iter, headers };
    },
  };
}

export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

async function* once(buf: Uint8Array): AsyncIterableIterator<Uint8Array> {
  if (buf.byteLength) yield buf;
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of it) { parts.push(p); n += p.byteLength; }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.byteLength; }
  return out;
}
