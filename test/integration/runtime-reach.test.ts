// host/runtime.ts on real directories: a program out of others' reach is offered through a link
// in the bin dir (refreshed when the program changes), and explainUnreachable names the first
// directory a user cannot search, judged by owner, group and other bits.
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { explainUnreachable, reachableRuntime, RUNTIME_COPY } from "../../agent/host/runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "agent-reach-"));
chmodSync(dir, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const nobody = { name: "nobody-agent-test", uid: 65534, gid: 65534 };

test("a program everyone can run is used in place; one under a 0700 dir is linked into the bin dir and refreshed", () => {
  const open = join(dir, "open"), closed = join(dir, "closed"), bin = join(dir, "bin");
  for (const d of [open, closed, bin]) mkdirSync(d, { recursive: true });
  chmodSync(closed, 0o700);
  writeFileSync(join(open, "rt"), "#!/bin/sh\necho v1\n", { mode: 0o755 });
  expect(reachableRuntime(join(open, "rt"), bin)).toBe(join(open, "rt"));

  const prog = join(closed, "rt");
  writeFileSync(prog, "#!/bin/sh\necho v1\n", { mode: 0o755 });
  const offered = reachableRuntime(prog, bin);
  expect(offered).toBe(join(bin, RUNTIME_COPY));
  expect(statSync(offered).ino).toBe(statSync(prog).ino);              // a hard link: nothing copied
  expect(reachableRuntime(prog, bin)).toBe(offered);                     // idempotent

  rmSync(prog);                                                          // a rebuilt program: a new inode
  writeFileSync(prog, "#!/bin/sh\necho v2 longer\n", { mode: 0o755 });
  reachableRuntime(prog, bin);
  expect(readFileSync(offered, "utf8")).toContain("v2");

  chmodSync(prog, 0o700);                                                // others may not execute it: a copy, 0755
  reachableRuntime(prog, bin);
  expect(statSync(offered).ino).not.toBe(statSync(prog).ino);
  expect(statSync(offered).mode & 0o777).toBe(0o755);
  expect(readFileSync(offered, "utf8")).toContain("v2");
});

test("explainUnreachable names the first directory the user cannot search, or the file it cannot execute", () => {
  const top = join(dir, "home"), mid = join(top, "tools"), prog = join(mid, "serve");
  mkdirSync(mid, { recursive: true });
  writeFileSync(prog, "#!/bin/sh\n", { mode: 0o755 });
  chmodSync(top, 0o700);
  expect(explainUnreachable(prog, nobody)).toContain(`cannot search ${top} (mode 0700`);
  expect(explainUnreachable(prog, nobody)).toContain("nobody-agent-test (uid 65534)");
  // found on PATH by name, like `run: serve`
  expect(explainUnreachable("serve", nobody, `/nonexistent:${mid}`)).toContain(`cannot search ${top}`);
  // group bits count for the owning group; other bits for everyone else
  chmodSync(top, 0o750);
  expect(explainUnreachable(prog, nobody)).toContain(`cannot search ${top}`);
  expect(explainUnreachable(prog, { ...nobody, gid: statSync(top).gid })).toBeNull();
  chmodSync(top, 0o755);
  chmodSync(prog, 0o744);
  expect(explainUnreachable(prog, nobody)).toContain(`may not execute ${prog}`);
  chmodSync(prog, 0o755);
  expect(explainUnreachable(prog, nobody)).toBeNull();
  expect(explainUnreachable(join(dir, "missing"), nobody)).toBeNull();
});
