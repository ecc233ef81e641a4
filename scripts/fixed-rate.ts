// An open-loop load generator: `--rate` requests/s of GET `url` spread over `--connections`
// kept-alive connections, each request sent at its fixed time (start + i/rate, on a 1 ms timer)
// whether or not the earlier ones were answered. Latency counts from the write to the end of the
// answer; `lag` is how late the generator itself sent (its timer jitter). Prints one JSON line.
//   bun scripts/fixed-rate.ts --rate 1000 --connections 16 --duration 10 http://127.0.0.1:8080/
// (autocannon -R does the same but reports whole milliseconds: too coarse for a 1 ms goal.)
import { parseArgs } from "node:util";

const { values: o, positionals } = parseArgs({ allowPositionals: true, options: {
  rate: { type: "string", default: "1000" }, connections: { type: "string", default: "16" }, duration: { type: "string", default: "10" } } });
const url = new URL(positionals[0] ?? "http://127.0.0.1:8080/");
const RATE = Number(o.rate), CONNS = Number(o.connections), SECONDS = Number(o.duration);
const REQ = Buffer.from(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);

interface C { due: number[]; buf: string; sock: Awaited<ReturnType<typeof Bun.connect>> | null }
const lat: number[] = [];
let errors = 0;
/** How late the generator sent its most delayed request (its own scheduling jitter). */
let lag = 0;
const conns: C[] = [];
for (let i = 0; i < CONNS; i++) {
  const c: C = { due: [], buf: "", sock: null };
  conns.push(c);
  c.sock = await Bun.connect({ hostname: url.hostname, port: Number(url.port), socket: {
    data(_s, d) {
      c.buf += d.toString("latin1");
      for (;;) {   // answers of a known Content-Length (the benchmark's upstream says "hello <name>")
        const end = c.buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const len = Number(/content-length: *(\d+)/i.exec(c.buf.slice(0, end))?.[1] ?? 0);
        if (c.buf.length < end + 4 + len) return;
        if (!c.buf.startsWith("HTTP/1.1 200")) errors++;
        c.buf = c.buf.slice(end + 4 + len);
        lat.push(performance.now() - c.due.shift()!);
      }
    },
    close() { errors += c.due.length; c.due = []; c.sock = null; },
  } });
}
const start = performance.now() + 50;
const total = RATE * SECONDS;
let sent = 0;
await new Promise<void>((done) => {
  const tick = () => {
    const now = performance.now();
    while (sent < total && start + (sent * 1000) / RATE <= now) {
      const c = conns[sent % CONNS]!;
      const due = start + (sent * 1000) / RATE;
      sent++;
      if (!c.sock) { errors++; continue; }
      const at = performance.now();
      lag = Math.max(lag, at - due);
      c.due.push(at);
      c.sock.write(REQ);
    }
    if (sent < total) setTimeout(tick, 1); else done();
  };
  tick();
});
for (let i = 0; i < 500 && lat.length + errors < total; i++) await Bun.sleep(10);
for (const c of conns) c.sock?.end();
lat.sort((a, b) => a - b);
const q = (p: number) => Math.round((lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? NaN) * 1000) / 1000;
console.log(JSON.stringify({ rps: lat.length / SECONDS, requests: lat.length, errors: total - lat.length, p50: q(0.5), p99: q(0.99), max: q(1), lag: Math.round(lag * 1000) / 1000 }));
