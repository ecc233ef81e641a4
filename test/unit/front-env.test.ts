// The environment the agent gives the front it starts (agent/loop/front.ts): PATH and the two
// front settings when set, none of the agent's other variables (no AWS keys, no secrets).
import { expect, test } from "bun:test";
import { frontEnv } from "../../agent/loop/front.ts";

test.each([
  ["PATH only", { PATH: "/sbin:/bin", HOME: "/root", AWS_SECRET_ACCESS_KEY: "x" }, { PATH: "/sbin:/bin" }],
  ["no PATH: a default", {}, { PATH: "/usr/bin:/bin" }],
  ["the data path and the nice setting pass on", { PATH: "/bin", AGENT_FRONT_DATAPATH: "serve", AGENT_FRONT_NICE: "off", AGENT_OTHER: "1" },
    { PATH: "/bin", AGENT_FRONT_DATAPATH: "serve", AGENT_FRONT_NICE: "off" }],
  ["an empty value is still passed (set, not unset)", { PATH: "/bin", AGENT_FRONT_NICE: "" }, { PATH: "/bin", AGENT_FRONT_NICE: "" }],
])("%s", (_what, env, want) => {
  expect(frontEnv(env as Record<string, string>)).toEqual(want);
});
