// `agent status` as text: one screen, problems first and in plain words. Pure: the caller passes
// the time, whether to colour, and where the status came from.
import { formatDuration } from "../core/duration.ts";
import { bold, dim, green, red, yellow } from "../core/term.ts";
import { findProblems, shortSha, type Source } from "./problems.ts";
import type { Phase, Status } from "./types.ts";

export interface RenderOptions {
  now: number;
  color: boolean;
  source: Source;
  ageMs: number;
}

/** The status screen; ends with a newline. */
export function renderStatus(s: Status, opts: RenderOptions): string {
  const c = opts.color;
  const out: string[] = [];
  const i = s.instance;
  out.push(`${bold(c, i.role ?? "(no role)")} @ ${bold(c, i.environment ?? "(no environment)")}  ` +
    `${i.id ?? "(unknown instance)"}${i.zone ? ` (${i.zone})` : ""}  phase ${phaseText(s.phase, c)}`);

  const problems = findProblems(s, opts);
  if (problems.length) {
    out.push("", bold(c, red(c, `PROBLEMS (${problems.length})`)));
    for (const p of problems) out.push(`  ${red(c, "!")} ${p}`);
  }
  const notes = [...s.notices];
  if (s.phase === "paused") notes.unshift("paused with `agent pause`: nothing converges until `agent resume`; processes keep running");
  if (notes.length) {
    out.push("", bold(c, "NOTES"));
    for (const n of notes) out.push(`  - ${n}`);
  }

  out.push("");
  const tip = s.desired.tip && s.desired.tip !== s.desired.commit ? dim(c, `  (branch tip ${shortSha(s.desired.tip)})`) : "";
  const same = s.desired.commit !== null && s.desired.commit === s.current.commit;
  const since = s.current.since ? `  since ${ago(opts.now, Date.parse(s.current.since))}` : "";
  out.push(...table([
    ["desired", shortSha(s.desired.commit), s.desired.subject ?? ""],
    ["current", shortSha(s.current.commit), s.current.subject ?? ""],
  ]).map((line, n) => {
    if (n === 0) {
      const bad = s.desired.commit !== null && s.badCommits.includes(s.desired.commit) ? red(c, "  FAILED HERE") : "";
      return line.trimEnd() + bad + tip;
    }
    return (same ? line : yellow(c, line)).trimEnd() + dim(c, since);
  }));
  const t = s.lastTick;
  const tickAt = Date.parse(t.at);
  const tickWord = t.ok ? green(c, "ok") : red(c, `failed${t.reason ? ` (${t.reason})` : ""}`);
  if (s.rollout) out.push(`rollout    ${rolloutText(s.rollout, c)}`);
  out.push(`last tick  ${ago(opts.now, tickAt)}, ${tickWord} in ${formatDuration(t.durationMs)}${nextPoll(s, opts.now)}`);

  if (s.resources.length) {
    out.push("", bold(c, "RESOURCES"));
    const rows = s.resources.map((r) => [r.ready ? "ready" : "NOT READY", r.ref, r.reason, r.message]);
    out.push(...table(rows).map((line, n) => "  " + (s.resources[n]!.ready ? line : red(c, line)).trimEnd()));
  }

  out.push("", bold(c, "PROCESSES"));
  if (!s.processes.length) {
    out.push("  (none)");
  } else {
    const rows = [["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "HEALTH", "COMMIT"]];
    for (const p of s.processes) {
      rows.push([p.name, p.state, p.pid === null ? "-" : String(p.pid),
        p.uptimeMs === undefined || p.state !== "running" ? "-" : formatDuration(p.uptimeMs),
        String(p.restarts), health(p), p.commit ? shortSha(p.commit) : "-"]);
    }
    out.push(...table(rows).map((line, n) => {
      const p = n === 0 ? null : s.processes[n - 1]!;
      const bad = p !== null && (health(p) !== "healthy" || p.state !== "running");
      return "  " + (n === 0 ? dim(c, line) : bad ? red(c, line) : line).trimEnd();
    }));
  }

  if (s.front) out.push(...renderFront(c, s.front));

  if (s.secrets?.length) {
    // name, source and version: a value is never in the status
    out.push("", bold(c, "SECRETS"));
    const rows = [["NAME", "SOURCE", "VERSION", "PROCESSES"], ...s.secrets.map((x) => [x.name, x.source, x.version, x.processes.join(",")])];
    out.push(...table(rows).map((line, n) => "  " + (n === 0 ? dim(c, line) : line).trimEnd()));
  }

  out.push("", dim(c, sourceLine(s, opts)));
  return out.join("\n") + "\n";
}

function health(p: Status["processes"][number]): string {
  if (p.state !== "running") return "-";
  return p.healthy ? "healthy" : "UNHEALTHY";
}

/** The node's place in a rollout: its wave, and what it waits for or who halted it. */
export function rolloutText(r: NonNullable<Status["rollout"]>, c: boolean): string {
  const wave = `wave ${r.wave} of ${r.of}`;
  if (r.decision === "halted" || r.decision === "rollback") return red(c, `${wave}: rollout halted by ${r.haltedBy.join(", ")} (${r.reason})${r.decision === "rollback" ? ", rolling back" : ""}`);
  if (r.decision === "wait") {
    const what = r.reason === "Baking" ? "to bake" : r.reason === "WaveFull" ? "to finish deploying (the wave is full)" : "to converge";
    return yellow(c, `${wave}: waiting for its wave: for ${r.waitingFor.length ? r.waitingFor.join(", ") : "earlier waves"} ${what}${r.until ? `, until ${r.until}` : ""}`);
  }
  return `${wave}: moving (${r.reason})`;
}

function phaseText(p: Phase, c: boolean): string {
  if (p === "converged") return green(c, p);
  if (p === "failed" || p === "degraded") return red(c, p.toUpperCase());
  return yellow(c, p);
}

function ago(now: number, at: number): string {
  if (!Number.isFinite(at)) return "at an unknown time";
  const d = now - at;
  return d >= 0 ? `${formatDuration(d)} ago` : `in ${formatDuration(-d)}`;
}

function nextPoll(s: Status, now: number): string {
  if (s.phase === "paused" || !s.nextPollAt) return "";
  const at = Date.parse(s.nextPollAt);
  if (!Number.isFinite(at)) return "";
  return at >= now ? `; next poll in ${formatDuration(at - now)}` : `; next poll was due ${formatDuration(now - at)} ago`;
}

function sourceLine(s: Status, o: RenderOptions): string {
  const from = o.source === "daemon" ? `from the daemon (pid ${s.agent.pid})` : "from status.json (the daemon is not answering)";
  return `status ${from}, written ${formatDuration(Math.max(0, o.ageMs))} ago; agent ${s.agent.version}, mode ${s.agent.mode}`;
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length); });
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  "));
}

/** FRONT: each public port, who serves it (process#instance@commit on its loopback port), in flight, rate. */
function renderFront(c: boolean, f: NonNullable<Status["front"]>): string[] {
  const out = ["", bold(c, "FRONT") + dim(c, `  pid ${f.pid ?? "-"}, restarted ${f.restarts}×${f.event ? `; ${f.event}` : ""}`)];
  if (f.error) return [...out, "  " + red(c, f.error)];
  const rejected = Object.entries(f.rejected).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ");
  const rows = [["PORT", "UPSTREAM", "LOOPBACK", "STATE", "IN FLIGHT", "REQUESTS", "RATE"]];
  for (const p of f.ports) {
    const rate = p.ratePerSec === null ? "-" : `${p.ratePerSec}/s`;
    if (!p.upstreams.length) rows.push([`${p.listen}:${p.port}`, "(none: holding)", "-", p.gated ? "gated" : "-", String(p.inflight), "-", rate]);
    p.upstreams.forEach((u, n) => rows.push([n === 0 ? `${p.listen}:${p.port}` : "", u.id, String(u.port),
      u.draining ? "draining" : u.inRotation ? "serving" : u.healthy ? (p.gated ? "ready (gated)" : "ready") : "not ready",
      String(u.inflight), String(u.requests), n === 0 ? rate : ""]));
  }
  out.push(...table(rows).map((line, n) => "  " + (n === 0 ? dim(c, line) : line).trimEnd()));
  out.push(`  held now ${f.held}; turned away: ${rejected || "none"}`);
  return out;
}
