// `agent plan` on the compiled binary: what a tick would do, changing nothing: on an empty node,
// on a converged one, with a new commit pinned; the text form and the --json shape.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { alive, makeKit, type Kit } from "./kit.ts";

let k: Kit;
beforeAll(async () => { k = await makeKit("plan"); });
afterAll(async () => { await k?.stop(); });

const pids = (): number[] => {
  try { return JSON.parse(readFileSync(join(k.state, "state.json"), "utf8")).processes.map((p: any) => p.pid); } catch { return []; }
};
const releases = () => (existsSync(join(k.state, "releases")) ? readdirSync(join(k.state, "releases")).filter((d) => !d.startsWith(".")) : []);

describe("agent plan", () => {
  let v1: string;

  test("on an empty node: prepare and cutover with descriptions, exit 1, nothing changed", async () => {
    v1 = await k.release({ VERSION: "v1\n" }, "v1");
    const r = await k.agent(["plan"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`desired ${v1.slice(0, 12)}  current none`);
    expect(r.stdout).toMatch(new RegExp(`release\\.prepare +fetch, check out and set up ${v1.slice(0, 12)}`));
    expect(r.stdout).toMatch(new RegExp(`release\\.cutover +switch current from nothing to ${v1.slice(0, 12)}`));
    expect(existsSync(join(k.state, "current"))).toBe(false);
    expect(releases()).toEqual([]);
    expect(pids()).toEqual([]);
    expect(existsSync(join(k.state, "status.json"))).toBe(false);
  });

  test("--json: actions with kind, ref, commit and description; desired and current", async () => {
    const r = await k.agent(["plan", "--json"]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.blocked).toBeNull();
    expect(j.desired).toMatchObject({ commit: v1, tip: k.repo.head });
    expect(j.current.commit).toBeNull();
    expect(j.actions.map((a: any) => a.kind)).toEqual(["release.prepare", "release.cutover"]);
    for (const a of j.actions) {
      expect(a).toMatchObject({ ref: `release/${v1.slice(0, 12)}`, commit: v1 });
      expect(typeof a.description).toBe("string");
      expect(a.description.length).toBeGreaterThan(10);
    }
    expect(j.actions[1].from).toBeNull();
  });

  test("on a converged node: \"nothing to do\", exit 0, and the same JSON with no actions", async () => {
    expect((await k.agent(["once"])).code).toBe(0);
    const before = pids();
    const r = await k.agent(["plan"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("nothing to do");
    const j = JSON.parse((await k.agent(["plan", "--json"])).stdout);
    expect(j).toMatchObject({ actions: [], blocked: null, desired: { commit: v1 }, current: { commit: v1 } });
    expect(pids()).toEqual(before);
  });

  test("with a new commit pinned: lists the restart in place from the running release, changes nothing", async () => {
    const before = pids();
    const status = readFileSync(join(k.state, "status.json"), "utf8");
    const v2 = await k.release({ VERSION: "v2\n" }, "v2");
    const r = await k.agent(["plan"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`switch current from ${v1.slice(0, 12)} to ${v2.slice(0, 12)}`);
    expect(readlinkSync(join(k.state, "current"))).toBe(`releases/${v1}`);
    expect(releases()).toEqual([v1]);
    expect(pids()).toEqual(before);
    for (const pid of before) expect(alive(pid)).toBe(true);
    expect(readFileSync(join(k.state, "status.json"), "utf8")).toBe(status);
  });
});
