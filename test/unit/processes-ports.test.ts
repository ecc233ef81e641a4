// fixedPort as a table: which processes restart stop-then-start because two copies cannot share a port.
import { describe, expect, test } from "bun:test";
import { fixedPort } from "../../agent/loop/processes.ts";
import { parseRole } from "../../agent/manifest/parse.ts";

const proc = (yaml: string) => {
  const r = parseRole(`processes:\n  web: { run: bun app.ts${yaml ? ", " + yaml : ""} }\n`, "roles/web.yaml");
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.value.processes.web!;
};

const table: [string, string, Record<string, string>, boolean][] = [
  ["nothing fixed: the agent assigns ports", "health: { http: /up }", {}, false],
  ["no health, no port", "", {}, false],
  ["a command health check", "health: { command: bin/check }", {}, false],
  ["http.port: behind the front, each instance on a loopback port of its own", "http: { port: 8080 }", {}, false],
  ["health.port", "health: { http: /up, port: 8080 }", {}, true],
  ["health.tcp", "health: { tcp: 9000 }", {}, true],
  ["PORT in the process's env", "env: { PORT: 8080 }", {}, true],
  ["PORT in the manifest's roles.<role>.env", "", { PORT: "8080", RACK_ENV: "production" }, true],
  ["PORT in the manifest's env, with an HTTP check without a port", "health: { http: /up }", { PORT: "8080" }, true],
  ["other variables in the manifest's env", "health: { http: /up }", { RACK_ENV: "production" }, false],
];

describe("fixedPort", () => {
  for (const [name, yaml, bindingEnv, want] of table) {
    test(`${name}: ${want ? "stop-then-start" : "overlap"}`, () => expect(fixedPort(proc(yaml), bindingEnv)).toBe(want));
  }
});
