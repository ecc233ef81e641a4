// Parsing /proc/<pid>/stat: the start time is what tells a reused pid from ours.
import { expect, test } from "bun:test";
import { parseStat, readStat } from "../../agent/host/proc.ts";

const line = (comm: string) =>
  `4242 (${comm}) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 5 1 0 987654 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n`;

test.each(["bun", "my app", "a) (b", "))"])("comm %p: fields after the last ')' are read", (comm) => {
  expect(parseStat(line(comm))).toEqual({ pid: 4242, state: "S", ppid: 1, pgrp: 4242, nice: 5, startTime: 987654 });
});

test("garbage is null, this process is readable", () => {
  expect(parseStat("nonsense")).toBeNull();
  expect(readStat(process.pid)?.pid).toBe(process.pid);
  expect(readStat(2 ** 22 + 11)).toBeNull();
});
