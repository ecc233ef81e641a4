// `agent logs`: the tail is read up to one size, the same size -f then follows from, so a line
// appended between the two is printed once (it used to be skipped when it landed in between).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tailLines } from "../../agent/cli/logs.ts";

const dir = mkdtempSync(join(tmpdir(), "logs-tail-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, "web.log");
writeFileSync(`${file}.1`, "old 1\nold 2\n");
writeFileSync(file, "a\nb\nc\nappended later\n");
const upToC = "a\nb\nc\n".length;

describe("tailLines", () => {
  test.each([
    [2, undefined, "c\nappended later\n"],      // the whole file by default
    [2, upToC, "b\nc\n"],                       // only up to the size the follower starts from
    [5, upToC, "old 1\nold 2\na\nb\nc\n"],      // too few lines: the rest from .1
    [1, 0, "old 2\n"],                          // an empty live file: the end of .1
    [0, upToC, ""],
  ])("%i lines up to byte %p", (n, end, want) => {
    expect(tailLines(file, n, end)).toBe(want);
  });
});
