// Log lines: JSON for journald, readable text on a terminal, both keeping what a person needs.
import { describe, expect, test } from "bun:test";
import { createLogger } from "../../agent/core/log.ts";
import { AgentError } from "../../agent/core/errors.ts";

const T = Date.parse("2026-11-26T12:00:01.250Z");

describe("log", () => {
  test("JSON lines: core keys win, errors keep their message and reason", () => {
    const lines: string[] = [];
    const log = createLogger("agent", { json: true, write: (l) => lines.push(l), now: () => T }).child("loop");
    log.warn("tick failed", { msg: "clash", err: new AgentError("SourceFetchFailed", "HTTP 503"), plain: new Error("boom") });
    const o = JSON.parse(lines[0]!);
    expect(o).toEqual({
      time: "2026-11-26T12:00:01.250Z", level: "warn", component: "agent.loop", msg: "tick failed",
      "field.msg": "clash", err: { reason: "SourceFetchFailed", message: "HTTP 503" }, plain: "boom",
    });
  });

  test("text: time unless under systemd, colour only when asked", () => {
    const lines: string[] = [];
    const w = (l: string) => lines.push(l);
    createLogger("agent", { json: false, write: w, now: () => T, time: true, color: false }).error("cannot mount", { dev: "/dev/loop3" });
    createLogger("agent", { json: false, write: w, now: () => T, time: false, color: true }).error("cannot mount");
    expect(lines[0]).toBe("12:00:01.250 error agent: cannot mount dev=/dev/loop3");
    expect(lines[1]).toBe("\x1b[31merror\x1b[0m agent: cannot mount");
  });

  test("INVOCATION_ID (systemd) drops the time from text lines; levels below the threshold are dropped", () => {
    const saved = process.env.INVOCATION_ID;
    process.env.INVOCATION_ID = "abc";
    try {
      const lines: string[] = [];
      const log = createLogger("agent", { json: false, color: false, level: "info", write: (l) => lines.push(l) });
      log.debug("hidden");
      log.info("shown");
      expect(lines).toEqual(["info  agent: shown"]);
    } finally {
      if (saved === undefined) delete process.env.INVOCATION_ID; else process.env.INVOCATION_ID = saved;
    }
  });
});
