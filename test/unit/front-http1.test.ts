// The socket data path's HTTP/1.1 framing, as tables: request heads (what is parsed, what is
// refused with which status), the head sent to the instance, response framing, and the chunked
// reader fed whole and byte by byte.
import { describe, expect, test } from "bun:test";
import { ChunkedReader, closeFrame, headEnd, parseRequestHead, parseResponseHead, renderResponseHead, rewriteRequestHead } from "../../agent/front/http1.ts";

const req = (lines: string[]) => lines.join("\r\n") + "\r\n\r\n";

describe("headEnd", () => {
  test.each([
    ["GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 27],
    ["GET / HTTP/1.1\r\nHost: a\r\n\r\nnext", 0, 27],
    ["GET / HTTP/1.1\r\nHost: a\r\n", 0, -1],
    ["GET / HTTP/1.1\r\nHost: a\r\n\r\n", 25, 27],   // the search resumes a little before `from` (a split CRLFCRLF)
  ] as const)("%j from %d -> %d", (text, from, want) => {
    expect(headEnd(Buffer.from(text), from)).toBe(want);
  });
});

describe("parseRequestHead", () => {
  test.each([
    ["a plain GET", ["GET /a?b=1 HTTP/1.1", "Host: x"], { method: "GET", target: "/a?b=1", host: "x", body: { kind: "none" }, keepAlive: true, websocket: false }],
    ["Connection: close", ["GET / HTTP/1.1", "Host: x", "Connection: close"], { keepAlive: false }],
    ["HTTP/1.0 closes unless asked", ["GET / HTTP/1.0"], { keepAlive: false, version: "HTTP/1.0" }],
    ["HTTP/1.0 keep-alive", ["GET / HTTP/1.0", "Connection: Keep-Alive"], { keepAlive: true }],
    ["a Content-Length", ["POST / HTTP/1.1", "Host: x", "Content-Length: 12"], { body: { kind: "length", length: 12 } }],
    ["Content-Length: 0 has no body", ["POST / HTTP/1.1", "Host: x", "Content-Length: 0"], { body: { kind: "none" } }],
    ["the same Content-Length twice", ["POST / HTTP/1.1", "Host: x", "Content-Length: 3", "content-length: 3"], { body: { kind: "length", length: 3 } }],
    ["chunked", ["POST / HTTP/1.1", "Host: x", "Transfer-Encoding: gzip, chunked"], { body: { kind: "chunked" } }],
    ["a WebSocket handshake", ["GET /ws HTTP/1.1", "Host: x", "Connection: keep-alive, Upgrade", "Upgrade: WebSocket"], { websocket: true }],
    ["Upgrade without Connection: upgrade is no handshake", ["GET /ws HTTP/1.1", "Host: x", "Upgrade: websocket"], { websocket: false }],
    ["Expect: 100-continue", ["PUT / HTTP/1.1", "Host: x", "Expect: 100-continue", "Content-Length: 5"], { expectContinue: true }],
    ["an absolute-form target is reduced to a path", ["GET http://x.example/p?q HTTP/1.1", "Host: x"], { target: "/p?q" }],
    ["OPTIONS *", ["OPTIONS * HTTP/1.1", "Host: x"], { target: "*" }],
  ] as const)("%s", (_name, lines, want) => {
    const r = parseRequestHead(req([...lines]));
    if (!r.ok) throw new Error(r.error);
    expect(r.head).toMatchObject(want as object);
  });

  test.each([
    ["garbage", ["hello"], 400, "request line"],
    ["no Host in HTTP/1.1", ["GET / HTTP/1.1"], 400, "Host"],
    ["two Hosts", ["GET / HTTP/1.1", "Host: a", "Host: b"], 400, "Host"],
    ["a bad Content-Length", ["POST / HTTP/1.1", "Host: x", "Content-Length: 1x"], 400, "Content-Length"],
    ["a negative Content-Length", ["POST / HTTP/1.1", "Host: x", "Content-Length: -1"], 400, "Content-Length"],
    ["conflicting Content-Lengths", ["POST / HTTP/1.1", "Host: x", "Content-Length: 1", "Content-Length: 2"], 400, "conflicting"],
    ["chunked and a length (smuggling)", ["POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Content-Length: 2"], 400, "both"],
    ["a coding other than chunked last", ["POST / HTTP/1.1", "Host: x", "Transfer-Encoding: gzip"], 501, "gzip"],
    ["HTTP/2.0", ["GET / HTTP/2.0", "Host: x"], 505, "not supported"],
    ["a header without a colon", ["GET / HTTP/1.1", "Host: x", "oops"], 400, "without a name"],
    ["a space in a header name", ["GET / HTTP/1.1", "Host: x", "Bad Name: y"], 400, "invalid header name"],
    ["a target that is not a path", ["GET foo HTTP/1.1", "Host: x"], 400, "not a path"],
  ] as const)("%s -> $2", (_name, lines, status, msg) => {
    const r = parseRequestHead(req([...lines]));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.status).toBe(status);
    expect(r.error).toContain(msg);
  });
});

describe("rewriteRequestHead", () => {
  const rewrite = (lines: string[], proto: "http" | "https" = "http") => {
    const r = parseRequestHead(req(lines));
    if (!r.ok) throw new Error(r.error);
    return rewriteRequestHead(r.head, { peer: "10.0.0.9", proto });
  };
  test("hop-by-hop headers go, X-Forwarded-* are set, X-Forwarded-For is appended to", () => {
    expect(rewrite(["GET /p HTTP/1.1", "Host: site", "Connection: keep-alive, X-Private", "Keep-Alive: 5", "X-Private: s", "TE: trailers",
      "X-Forwarded-For: 1.2.3.4", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil", "Accept: */*"], "http")).toBe(
      "GET /p HTTP/1.1\r\nHost: site\r\nAccept: */*\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: site\r\n\r\n");
  });
  test("a chunked body keeps its framing; HTTP/1.0 stays 1.0 (its answer must not be chunked)", () => {
    expect(rewrite(["POST / HTTP/1.0", "Transfer-Encoding: chunked"], "https")).toBe(
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: \r\n\r\n");
  });
  test("a WebSocket handshake keeps Connection: Upgrade and its Sec-WebSocket-* headers", () => {
    const out = rewrite(["GET /ws HTTP/1.1", "Host: h", "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: k", "Sec-WebSocket-Version: 13"]);
    expect(out).toContain("Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n");
  });
});

describe("parseResponseHead", () => {
  const res = (lines: string[], method = "GET") => {
    const r = parseResponseHead(req(lines), method);
    if (!r.ok) throw new Error(r.error);
    return r.head;
  };
  test.each([
    ["a length", ["HTTP/1.1 200 OK", "Content-Length: 5"], "GET", { kind: "length", length: 5 }, false],
    ["chunked", ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"], "GET", { kind: "chunked" }, false],
    ["neither: until the instance closes", ["HTTP/1.1 200 OK"], "GET", { kind: "close" }, true],
    ["the answer to HEAD has none", ["HTTP/1.1 200 OK", "Content-Length: 5"], "HEAD", { kind: "none" }, false],
    ["204", ["HTTP/1.1 204 No Content"], "GET", { kind: "none" }, false],
    ["304", ["HTTP/1.1 304 Not Modified", "Content-Length: 9"], "GET", { kind: "none" }, false],
    ["100 Continue", ["HTTP/1.1 100 Continue"], "PUT", { kind: "none" }, false],
    ["Connection: close", ["HTTP/1.1 200 OK", "Content-Length: 0", "Connection: close"], "GET", { kind: "none" }, true],
    ["HTTP/1.0 closes", ["HTTP/1.0 200 OK", "Content-Length: 1"], "GET", { kind: "length", length: 1 }, true],
  ] as const)("%s", (_name, lines, method, body, close) => {
    const h = res([...lines], method);
    expect(h.body as object).toEqual(body);
    expect(h.close).toBe(close);
  });
  test("the head for the client drops Connection and Keep-Alive; close adds Connection: close", () => {
    const h = res(["HTTP/1.1 200 OK", "Connection: keep-alive", "Keep-Alive: timeout=5", "Content-Length: 2", "X-App: 1"]);
    expect(renderResponseHead(h, false)).toBe("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-App: 1\r\n\r\n");
    expect(renderResponseHead(h, true)).toBe("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-App: 1\r\nConnection: close\r\n\r\n");
  });
  test("a 101 keeps its Connection and Upgrade headers", () => {
    const h = res(["HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Accept: a"]);
    expect(renderResponseHead(h, true)).toBe("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a\r\n\r\n");
  });
  test.each([["HTTP/1.1 2000 OK"], ["SIP/2.0 200 OK"], ["HTTP/1.1 200 OK\r\nContent-Length: x"]])("%j is refused", (head) => {
    expect(parseResponseHead(head + "\r\n\r\n", "GET").ok).toBe(false);
  });
});

describe("ChunkedReader", () => {
  const cases: [string, string, { used: number; data: number; done: boolean; error?: string }][] = [
    ["two chunks and the end", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", { used: 26, data: 11, done: true }],
    ["hex sizes, either case", "a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", { used: 35, data: 20, done: true }],
    ["extensions are skipped", "3;name=v\r\nabc\r\n0;x\r\n\r\n", { used: 22, data: 3, done: true }],
    ["trailers are skipped", "1\r\nx\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n", { used: 29, data: 1, done: true }],
    ["the next request after the end is not taken", "0\r\n\r\nGET / HTTP/1.1\r\n", { used: 5, data: 0, done: true }],
    ["not yet ended", "5\r\nhel", { used: 6, data: 3, done: false }],
    ["no size", "\r\n", { used: 0, data: 0, done: false, error: "without a size" }],
    ["a bad size", "5x\r\n", { used: 1, data: 0, done: false, error: "malformed chunk size" }],
    ["data without its CRLF", "1\r\nxy", { used: 4, data: 1, done: false, error: "without CRLF" }],
    ["a size past 12 hex digits", "1234567890abc\r\n", { used: 12, data: 0, done: false, error: "too large" }],
  ];
  test.each(cases)("%s (whole)", (_name, input, want) => {
    const r = new ChunkedReader();
    const used = r.feed(Buffer.from(input));
    expect({ used, data: r.data, done: r.done, ...(r.error ? { error: r.error } : {}) }).toMatchObject({ ...want, ...(want.error ? { error: expect.stringContaining(want.error) } : {}) });
  });
  test.each(cases.filter((c) => !c[2].error))("%s (one byte at a time)", (_name, input, want) => {
    const r = new ChunkedReader();
    const bytes = Buffer.from(input);
    let used = 0;
    for (let i = 0; i < bytes.length && !r.done; i++) used += r.feed(bytes.subarray(i, i + 1));
    expect({ used, data: r.data, done: r.done }).toEqual(want);
  });
  test("feeding from an offset counts from there", () => {
    const r = new ChunkedReader();
    expect(r.feed(Buffer.from("HEAD2\r\nab\r\n0\r\n\r\n"), 4)).toBe(12);
    expect(r.done).toBe(true);
  });
});

describe("closeFrame", () => {
  test("unmasked from the front to a client: opcode 8, the code, the reason", () => {
    expect([...closeFrame(1001, "bye", null)]).toEqual([0x88, 5, 0x03, 0xe9, 0x62, 0x79, 0x65]);
  });
  test("masked towards an instance: the mask bit, the key, the payload xored", () => {
    const f = closeFrame(1001, "", new Uint8Array([1, 2, 3, 4]));
    expect([...f]).toEqual([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe9 ^ 2]);
  });
});
