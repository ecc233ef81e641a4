// HTTP/1.1 framing for the front's socket data path: find and parse a request or response head,
// rewrite a request head for the instance (X-Forwarded-*, no hop-by-hop headers), and follow a
// chunked body incrementally so it can be passed on byte for byte. Pure: no I/O, no clock.
// It parses only what a proxy needs; header values other than the framing ones are not checked.

/** Request heads past this many bytes get 431 (nginx's default large_client_header_buffers is 4 x 8 KiB). */
export const MAX_HEAD = 64 * 1024;

const CRLFCRLF = Buffer.from("\r\n\r\n");

/** Index just past the "\r\n\r\n" that ends a head in `buf` (searching from `from`), or -1. */
export function headEnd(buf: Buffer, from = 0): number {
  const i = buf.indexOf(CRLFCRLF, Math.max(0, from - 3));
  return i < 0 ? -1 : i + 4;
}

export interface RequestHead {
  method: string;
  /** The origin-form target ("/path?q"); an absolute-form target is reduced to it. */
  target: string;
  /** "HTTP/1.1" or "HTTP/1.0". */
  version: string;
  /** Every header line as sent, names as sent (lower-cased names are in `lower`). */
  headers: [string, string][];
  host: string;
  /** The body: none, a Content-Length, or chunked. */
  body: { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" };
  /** The client wants the connection kept after this exchange. */
  keepAlive: boolean;
  /** A WebSocket handshake (Upgrade: websocket). */
  websocket: boolean;
  expectContinue: boolean;
  /** The head as received, when it can be passed on as it is (then only X-Forwarded-* are added). */
  text: string | null;
}

export type Parsed<T> = { ok: true; head: T } | { ok: false; status: 400 | 501 | 505; error: string };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// Hop-by-hop headers (RFC 9110 7.6.1) and the ones the front sets itself; Transfer-Encoding
// stays: a chunked body passes through with its framing.
const DROP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate", "proxy-authorization",
  "x-forwarded-proto", "x-forwarded-host"]);

/** The header lines of a head from `pos` (just past the start line) to its blank line. */
function parseFields(text: string, pos: number): [string, string][] | string {
  const out: [string, string][] = [];
  for (;;) {
    const eol = text.indexOf("\r\n", pos);
    if (eol < 0 || eol === pos) return out;
    const colon = text.indexOf(":", pos);
    if (colon <= pos || colon > eol) return `a header line without a name: ${JSON.stringify(text.slice(pos, Math.min(eol, pos + 40)))}`;
    for (let i = pos; i < colon; i++) {
      if (!TCHAR[text.charCodeAt(i)]) return `an invalid header name: ${JSON.stringify(text.slice(pos, Math.min(colon, pos + 40)))}`;
    }
    out.push([text.slice(pos, colon), text.slice(colon + 1, eol).trim()]);
    pos = eol + 2;
  }
}

/** tchar (RFC 9110 5.6.2) by character code. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

function tokens(v: string): string[] {
  return v.toLowerCase().split(",").map((t) => t.trim()).filter(Boolean);
}

/** Parses a request head (the text up to and including its blank line). */
export function parseRequestHead(text: string): Parsed<RequestHead> {
  let eol = text.indexOf("\r\n");
  if (eol < 0) eol = text.length;
  const parts = text.slice(0, eol).split(" ");
  if (parts.length !== 3 || !TOKEN.test(parts[0]!) || parts[1] === "") return { ok: false, status: 400, error: "a malformed request line" };
  const [method, rawTarget, version] = parts as [string, string, string];
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    return /^HTTP\/\d\.\d$/.test(version) ? { ok: false, status: 505, error: `${version} is not supported` } : { ok: false, status: 400, error: "a malformed request line" };
  }
  let target = rawTarget;
  const abs = /^https?:\/\/[^/?#]*/i.exec(target);
  if (abs) target = target.slice(abs[0].length) || "/";
  if (target[0] !== "/" && !(method === "OPTIONS" && target === "*")) return { ok: false, status: 400, error: "the request target is not a path" };
  const headers = parseFields(text, eol + 2);
  if (typeof headers === "string") return { ok: false, status: 400, error: headers };
  // plain: the head can go to the instance as it is, X-Forwarded-* added (no hop-by-hop header to drop)
  let plain = target === rawTarget;
  let host: string | null = null, length: number | null = null, chunked = false, te = false;
  let conn: string[] = [], upgrade = "", expect = "";
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (DROP.has(lower) || lower === "x-forwarded-for") plain = false;
    switch (lower) {
      case "host":
        if (host !== null) return { ok: false, status: 400, error: "more than one Host header" };
        host = value; break;
      case "content-length": {
        if (!/^\d{1,15}$/.test(value)) return { ok: false, status: 400, error: "an invalid Content-Length" };
        const n = Number(value);
        if (length !== null && length !== n) return { ok: false, status: 400, error: "conflicting Content-Length headers" };
        length = n; break;
      }
      case "transfer-encoding": {
        te = true;
        const codings = tokens(value);
        if (codings[codings.length - 1] !== "chunked") return { ok: false, status: 501, error: `Transfer-Encoding ${value} is not supported` };
        chunked = true; break;
      }
      case "connection": conn = conn.concat(tokens(value)); break;
      case "upgrade": upgrade = value.toLowerCase(); break;
      case "expect": expect = value.toLowerCase(); break;
    }
  }
  if (version === "HTTP/1.1" && host === null) return { ok: false, status: 400, error: "no Host header" };
  // both framings at once is how requests are smuggled past proxies (RFC 9112 6.3)
  if (te && length !== null) return { ok: false, status: 400, error: "both Transfer-Encoding and Content-Length" };
  const keepAlive = version === "HTTP/1.1" ? !conn.includes("close") : conn.includes("keep-alive");
  const websocket = upgrade === "websocket" && conn.includes("upgrade") && method === "GET";
  return {
    ok: true,
    head: {
      method, target, version, headers, host: host ?? "", text: plain ? text : null,
      body: chunked ? { kind: "chunked" } : length ? { kind: "length", length } : { kind: "none" },
      keepAlive, websocket, expectContinue: expect === "100-continue",
    },
  };
}


export interface Forwarded {
  /** The client's address. */
  peer: string;
  proto: "http" | "https";
}

/**
 * The head sent to the instance: the request line in origin form, the client's headers without
 * the hop-by-hop ones (and those named in Connection), X-Forwarded-For appended to,
 * X-Forwarded-Proto and -Host set. A WebSocket handshake keeps `Connection: Upgrade` and
 * `Upgrade: websocket`. The version stays the client's (an HTTP/1.0 client must not get a chunked answer).
 */
export function rewriteRequestHead(h: RequestHead, fwd: Forwarded): string {
  if (h.text !== null) {
    return `${h.text.slice(0, h.text.length - 2)}X-Forwarded-For: ${fwd.peer}\r\nX-Forwarded-Proto: ${fwd.proto}\r\nX-Forwarded-Host: ${h.host}\r\n\r\n`;
  }
  const named = new Set<string>();
  let xff = "";
  for (const [name, value] of h.headers) if (name.toLowerCase() === "connection") for (const t of tokens(value)) named.add(t);
  let out = `${h.method} ${h.target} ${h.version}\r\n`;
  for (const [name, value] of h.headers) {
    const lower = name.toLowerCase();
    if (lower === "x-forwarded-for") { xff = xff ? `${xff}, ${value}` : value; continue; }
    if (DROP.has(lower) || (named.has(lower) && lower !== "host")) continue;
    out += `${name}: ${value}\r\n`;
  }
  if (h.websocket) out += "Connection: Upgrade\r\nUpgrade: websocket\r\n";
  out += `X-Forwarded-For: ${xff ? `${xff}, ${fwd.peer}` : fwd.peer}\r\nX-Forwarded-Proto: ${fwd.proto}\r\nX-Forwarded-Host: ${h.host}\r\n\r\n`;
  return out;
}

export interface ResponseHead {
  status: number;
  /** How the body is delimited; "close": it lasts until the instance closes the connection. */
  body: { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" } | { kind: "close" };
  /** The instance will close the connection after this response. */
  close: boolean;
  /** The head for the client: the status line and the headers without the hop-by-hop Connection ones. */
  lines: string[];
  /** The head had no hop-by-hop header: it can go to the client as it is. */
  plain: boolean;
  /** Content-Length when given (for the access log). */
  length: number | null;
}

/** Parses an instance's response head; `method` is the request's (a HEAD's response has no body). */
export function parseResponseHead(text: string, method: string): Parsed<ResponseHead> {
  let eol = text.indexOf("\r\n");
  if (eol < 0) eol = text.length;
  const first = text.slice(0, eol);
  const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(first);
  if (!m) return { ok: false, status: 400, error: "a malformed status line" };
  const status = Number(m[2]);
  const fields = parseFields(text, eol + 2);
  if (typeof fields === "string") return { ok: false, status: 400, error: fields };
  let length: number | null = null, chunked = false, conn: string[] = [], plain = true;
  const lines = [first];
  for (const [name, value] of fields) {
    const lower = name.toLowerCase();
    if (lower === "content-length") {
      if (!/^\d{1,15}$/.test(value)) return { ok: false, status: 400, error: "an invalid Content-Length" };
      length = Number(value);
    } else if (lower === "transfer-encoding") chunked = tokens(value).at(-1) === "chunked";
    else if (lower === "connection") { conn = conn.concat(tokens(value)); plain = false; if (status === 101) lines.push(`${name}: ${value}`); continue; }
    else if ((lower === "keep-alive" || lower === "proxy-connection") && status !== 101) { plain = false; continue; }
    lines.push(`${name}: ${value}`);
  }
  const close = m[1] === "0" ? !conn.includes("keep-alive") : conn.includes("close");
  const bodyless = method === "HEAD" || status < 200 || status === 204 || status === 304;
  const body = bodyless ? { kind: "none" as const } : chunked ? { kind: "chunked" as const } : length !== null ? (length === 0 ? { kind: "none" as const } : { kind: "length" as const, length }) : { kind: "close" as const };
  return { ok: true, head: { status, body, close: close || body.kind === "close", lines, plain: plain || status === 101, length } };
}

/** The head for the client; `close` adds `Connection: close` (the front closes after it). */
export function renderResponseHead(h: ResponseHead, close: boolean): string {
  return h.lines.join("\r\n") + (close && h.status !== 101 ? "\r\nConnection: close" : "") + "\r\n\r\n";
}

/**
 * Follows a chunked body (RFC 9112 7.1) across reads: `feed` says how many bytes of the input
 * belong to the body (the rest is the next message) and counts the data bytes. It never copies
 * the body; the caller passes the bytes on as they are. Chunk extensions and trailers are skipped.
 */
export class ChunkedReader {
  /** Data bytes seen so far (what http.maxBody limits). */
  data = 0;
  done = false;
  error: string | null = null;
  private state: "size" | "ext" | "sizeLF" | "data" | "dataCR" | "dataLF" | "trailer" | "trailerLine" | "trailerLF" | "endLF" = "size";
  private left = 0;
  private digits = 0;

  /** Consumes from `buf[from..]`; returns how many bytes it took (all of them unless the body ended). */
  feed(buf: Uint8Array, from = 0): number {
    let i = from;
    const n = buf.length;
    while (i < n && !this.done && this.error === null) {
      const c = buf[i]!;
      switch (this.state) {
        case "size": {
          const d = hex(c);
          if (d >= 0) {
            if (++this.digits > 12) { this.error = "a chunk size too large"; break; }
            this.left = this.left * 16 + d; i++;
          } else if (this.digits === 0) this.error = "a chunk without a size";
          else if (c === 0x0d) { this.state = "sizeLF"; i++; }
          else if (c === 0x3b || c === 0x20 || c === 0x09) { this.state = "ext"; i++; }
          else this.error = "a malformed chunk size";
          break;
        }
        case "ext":
          if (c === 0x0d) this.state = "sizeLF";
          else if (c === 0x0a) this.error = "a bare LF in a chunk header";
          i++; break;
        case "sizeLF":
          if (c !== 0x0a) { this.error = "a chunk header without CRLF"; break; }
          i++;
          this.digits = 0;
          this.state = this.left === 0 ? "trailer" : "data";
          break;
        case "data": {
          const take = Math.min(this.left, n - i);
          i += take; this.left -= take; this.data += take;
          if (this.left === 0) this.state = "dataCR";
          break;
        }
        case "dataCR":
          if (c !== 0x0d) { this.error = "chunk data without CRLF"; break; }
          this.state = "dataLF"; i++; break;
        case "dataLF":
          if (c !== 0x0a) { this.error = "chunk data without CRLF"; break; }
          this.state = "size"; i++; break;
        case "trailer":   // at the start of a trailer line: CR ends the body
          if (c === 0x0d) { this.state = "endLF"; i++; } else { this.state = "trailerLine"; }
          break;
        case "trailerLine":
          if (c === 0x0d) this.state = "trailerLF";
          i++; break;
        case "trailerLF":
          if (c !== 0x0a) { this.error = "a trailer line without CRLF"; break; }
          this.state = "trailer"; i++; break;
        case "endLF":
          if (c !== 0x0a) { this.error = "a chunked body without its final CRLF"; break; }
          this.done = true; i++; break;
      }
    }
    return i - from;
  }
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** A WebSocket close frame (RFC 6455 5.5.1); `mask`: from a client (the front towards an instance). */
export function closeFrame(code: number, reason: string, mask: Uint8Array | null): Uint8Array {
  const r = Buffer.from(reason).subarray(0, 123);
  const payload = new Uint8Array(2 + r.length);
  payload[0] = code >> 8; payload[1] = code & 0xff; payload.set(r, 2);
  const out = new Uint8Array(2 + (mask ? 4 : 0) + payload.length);
  out[0] = 0x88;
  out[1] = (mask ? 0x80 : 0) | payload.length;
  if (mask) {
    out.set(mask, 2);
    for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i]! ^ mask[i % 4]!;
  } else out.set(payload, 2);
  return out;
}

/** A short plain-text answer the front gives itself. */
export function plainResponse(status: number, reason: string, body: string, extra: Record<string, string> = {}, close = false): string {
  let out = `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
  for (const [k, v] of Object.entries(extra)) out += `${k}: ${v}\r\n`;
  if (close) out += "Connection: close\r\n";
  return out + "\r\n" + body;
}
