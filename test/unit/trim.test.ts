// When an idle daemon gives back its binary's start-up pages, and which mappings it hands over.
import { describe, expect, test } from "bun:test";
import { readOnlyMappingsOf, trimAfterTick, type TrimMemory } from "../../agent/host/trim.ts";

describe("trimAfterTick", () => {
  const Q = 10_000;
  test.each<[string, TrimMemory, { now: number; idle: boolean }, boolean, TrimMemory]>([
    ["idle, but too soon after start", { busyAt: 0, trimmedAt: null }, { now: 9_999, idle: true }, false, { busyAt: 0, trimmedAt: null }],
    ["idle long enough after start: trim", { busyAt: 0, trimmedAt: null }, { now: 10_000, idle: true }, true, { busyAt: 0, trimmedAt: 10_000 }],
    ["already trimmed in this idle period", { busyAt: 0, trimmedAt: 10_000 }, { now: 60_000, idle: true }, false, { busyAt: 0, trimmedAt: 10_000 }],
    ["a busy tick (a deploy) restarts the wait", { busyAt: 0, trimmedAt: 10_000 }, { now: 70_000, idle: false }, false, { busyAt: 70_000, trimmedAt: 10_000 }],
    ["idle again, not yet quiet", { busyAt: 70_000, trimmedAt: 10_000 }, { now: 75_000, idle: true }, false, { busyAt: 70_000, trimmedAt: 10_000 }],
    ["idle again and quiet: trim once more", { busyAt: 70_000, trimmedAt: 10_000 }, { now: 80_000, idle: true }, true, { busyAt: 70_000, trimmedAt: 80_000 }],
    ["a kernel without MADV_PAGEOUT is never asked again", { busyAt: 70_000, trimmedAt: Infinity }, { now: 999_000, idle: true }, false, { busyAt: 70_000, trimmedAt: Infinity }],
  ])("%s", (_, m, tick, trim, memory) => {
    expect(trimAfterTick(m, tick, Q)).toEqual({ trim, memory });
  });
});

describe("readOnlyMappingsOf", () => {
  const maps = [
    "00200000-01a39000 r--p 00000000 fe:00 4242   /usr/local/bin/agent",
    "01a40000-06849000 r-xp 01838000 fe:00 4242   /usr/local/bin/agent",
    "0684a000-07942000 rw-p 06641000 fe:00 4242   /usr/local/bin/agent",
    "07942000-07a00000 rw-p 00000000 00:00 0 ",
    "7f0000000000-7f0000020000 r-xp 00000000 fe:00 99     /usr/lib/x86_64-linux-gnu/libc.so.6",
    "7f0000100000-7f0000101000 r--p 00000000 fe:00 4243   /usr/local/bin/agent-old",
    "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0      [stack]",
  ].join("\n");
  test("only the executable's own mappings, never a writable one, never another file", () => {
    expect(readOnlyMappingsOf(maps, "/usr/local/bin/agent")).toEqual([
      { start: 0x200000, end: 0x1a39000, perms: "r--p", path: "/usr/local/bin/agent" },
      { start: 0x1a40000, end: 0x6849000, perms: "r-xp", path: "/usr/local/bin/agent" },
    ]);
  });
  test("a path with spaces is matched whole", () => {
    expect(readOnlyMappingsOf("00400000-00401000 r-xp 00000000 fe:00 7 /opt/my agent/bin", "/opt/my agent/bin")).toHaveLength(1);
    expect(readOnlyMappingsOf("00400000-00401000 r-xp 00000000 fe:00 7 /opt/my agent/bin", "/opt/my")).toHaveLength(0);
  });
});
