// Every kind of bad input to the three file formats gets one clear line at the right line:column.
import { describe, expect, test } from "bun:test";
import { MAX_FILE_BYTES, decodeText, formatProblem, parseFile, parseManifest, parseRole } from "../../agent/manifest/parse.ts";
import { closest, editDistance } from "../../agent/manifest/suggest.ts";
import type { FileKind } from "../../agent/manifest/schema.ts";

const C = "9fceb02d0ae598e95dc970b74767f19372d61af8";

function problems(kind: FileKind, text: string | Uint8Array): string[] {
  const r = parseFile(kind, text, "f.yaml");
  return r.ok ? [] : r.problems.map(formatProblem);
}

const CASES: [string, FileKind, string, string[]][] = [
  ["duration in words", "manifest", `commit: ${C}\npoll: 30 seconds\n`,
    ['f.yaml:2:7: poll: must be a duration like 500ms, 30s, 2m or 1h (got "30 seconds")']],
  ["duration as a bare number", "manifest", `commit: ${C}\npoll: 30\n`,
    ['f.yaml:2:7: poll: expected text like "30s", got the number 30; put it in quotes if it is meant as text']],
  ["empty duration", "manifest", `commit: ${C}\npoll:\n`, ['f.yaml:2:6: poll: expected text like "30s", got an empty value']],
  ["short commit", "manifest", "commit: 9fceb02\n",
    ['f.yaml:1:9: commit: must be a full 40-character hex commit id (git rev-parse HEAD) (got "9fceb02")']],
  ["non-hex commit", "manifest", `commit: ${"g".repeat(40)}\n`,
    [`f.yaml:1:9: commit: must be a full 40-character hex commit id (git rev-parse HEAD) (got "${"g".repeat(40)}")`]],
  ["missing commit", "manifest", "# production\npoll: 30s\n",
    ["f.yaml:2:1: commit: required, but missing (the release: a commit of this repository)"]],
  ["percentage over 100%", "manifest", `commit: ${C}\nrollout:\n  waves: [1, 150%]\n`,
    ['f.yaml:3:14: rollout.waves.1: must be between 1% and 100% (got "150%")']],
  ["percentage in words, zero nodes", "manifest", `commit: ${C}\nrollout:\n  waves: [1, 25 percent, 0]\n`, [
    'f.yaml:3:14: rollout.waves.1: must be a percentage like 25% (or a whole number of nodes) (got "25 percent")',
    "f.yaml:3:26: rollout.waves.2: must be at least 1 (got the number 0)"]],
  ["empty waves", "manifest", `commit: ${C}\nrollout: { waves: [] }\n`, ["f.yaml:2:19: rollout.waves: needs at least 1 entry"]],
  ["unknown top-level key", "manifest", `commit: ${C}\npol: 30s\n`, ["f.yaml:2:1: pol: unknown field 'pol'; did you mean 'poll'?"]],
  ["unknown key, nothing close", "manifest", `commit: ${C}\nflavour: x\n`,
    ["f.yaml:2:1: flavour: unknown field 'flavour'; known fields: commit, poll, rollout, roles"]],
  ["volume binding neither id nor tag", "manifest", `commit: ${C}\nroles:\n  db:\n    volumes:\n      data: { ids: vol-1 }\n`,
    ["f.yaml:5:13: roles.db.volumes.data: must be one of {id} or {tag}, got a mapping with key ids; did you mean 'id'?"]],
  ["bad volume id", "manifest", `commit: ${C}\nroles:\n  db:\n    volumes:\n      data: { id: vol-12 }\n`,
    ['f.yaml:5:19: roles.db.volumes.data.id: must be an EBS volume id like vol-0123456789abcdef0 (got "vol-12")']],
  ["invalid role name", "manifest", `commit: ${C}\nroles:\n  Web: {}\n`,
    ["f.yaml:3:3: roles.Web: the name 'Web' must be lowercase letters, digits and '-', starting with a letter, at most 63 characters"]],
  ["env value is a list", "manifest", `commit: ${C}\nroles:\n  web:\n    env: { A: [1] }\n`,
    ["f.yaml:4:15: roles.web.env.A: expected text, a number or true or false, got a list"]],
  ["unknown key inside a union branch", "role", "processes:\n  web:\n    run: x\n    health: { http: /up, intervall: 5s }\n",
    ["f.yaml:4:26: processes.web.health.intervall: unknown field 'intervall'; did you mean 'interval'?"]],
  ["health that is no kind of check", "role", "processes:\n  web:\n    run: x\n    health: { htp: /up }\n",
    ["f.yaml:4:13: processes.web.health: must be one of {http}, {tcp} or {command}, got a mapping with key htp; did you mean 'http'?"]],
  ["empty health", "role", "processes:\n  web:\n    run: x\n    health: {}\n",
    ["f.yaml:4:13: processes.web.health: must be one of {http}, {tcp} or {command}, got an empty mapping"]],
  ["tcp port as text", "role", "processes:\n  db:\n    run: x\n    health: { tcp: x }\n",
    ['f.yaml:4:20: processes.db.health.tcp: expected a whole number, got "x"']],
  ["cwd escapes with ..", "role", "processes:\n  web:\n    run: x\n    cwd: ../up\n",
    ["f.yaml:4:10: processes.web.cwd: must stay inside the release directory (no '..') (got \"../up\")"]],
  ["absolute and escaping inputs, escaping shared", "role", "setup:\n  - run: x\n    inputs: [/etc/passwd, a/../../b]\nshared: [log, ../x]\n", [
    'f.yaml:3:14: setup.0.inputs.0: must be relative to the release directory, not absolute (got "/etc/passwd")',
    "f.yaml:3:27: setup.0.inputs.1: must stay inside the release directory (no '..') (got \"a/../../b\")",
    "f.yaml:4:15: shared.1: must stay inside the release directory (no '..') (got \"../x\")"]],
  ["duplicate process names", "role", "processes:\n  web:\n    run: a\n  worker:\n    run: b\n  web:\n    run: c\n",
    ["f.yaml:6:3: processes.web: duplicate key 'web' (first at line 2): YAML would keep only the last one; rename or merge them"]],
  ["missing run, typo, bad enum, zero instances", "role", "processes:\n  web:\n    cmd: x\n    stop: { signal: TERM }\n    instances: 0\n", [
    "f.yaml:2:3: processes.web.run: required, but missing (the command: argv as one string, split like a shell, without shell features)",
    "f.yaml:3:5: processes.web.cmd: unknown field 'cmd'; did you mean 'cwd'?",
    'f.yaml:4:21: processes.web.stop.signal: must be "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2" or "SIGKILL", got "TERM"; did you mean \'SIGTERM\'?',
    "f.yaml:5:16: processes.web.instances: must be at least 1 (got the number 0)"]],
  ["processes as a list, relative mount, unknown fs", "role", "processes: [a]\nvolumes:\n  data: { mount: data, fs: ext5 }\n", [
    "f.yaml:1:12: processes: expected a mapping (name: value), got a list",
    'f.yaml:3:18: volumes.data.mount: must be an absolute path (got "data")',
    "f.yaml:3:28: volumes.data.fs: must be \"ext4\" or \"xfs\", got \"ext5\"; did you mean 'ext4'?"]],
  ["malformed YAML", "role", "a: [1, 2\nb: 3\n",
    ["f.yaml:2:1: YAML syntax: Flow sequence in block collection must be sufficiently indented and end with a ]"]],
  ["tab indentation", "role", "processes:\n\tweb: {}\n", ["f.yaml:2:1: YAML syntax: Tabs are not allowed as indentation"]],
  ["two documents", "manifest", `commit: ${C}\n---\ncommit: ${C}\n`, ["f.yaml:2:1: more than one YAML document ('---'): keep one document per file"]],
  ["empty file", "manifest", "", ["f.yaml:1:1: file is empty: expected a manifest with at least 'commit: <40-character commit id>'"]],
  ["only comments", "role", "# nothing yet\n", ["f.yaml:1:1: file is empty: expected a role with at least 'processes:' or 'setup:'"]],
  ["a list at the top", "manifest", "- a\n- b\n",
    ["f.yaml:1:1: expected a manifest with at least 'commit: <40-character commit id>' (fields as 'key: value'), got a list"]],
  ["a scalar at the top", "config", "hello\n",
    ["f.yaml:1:1: expected the agent's settings with at least 'repo: https://...' (fields as 'key: value'), got \"hello\""]],
  ["unresolved alias", "manifest", `commit: *c\n`, ["f.yaml:1:9: commit: YAML alias *c has no anchor &c before it"]],
  ["config: ssh url, identity neither imds nor static", "config", "repo: git@example.com:x.git\nidentity: ec2\n", [
    'f.yaml:1:7: repo: must be a smart HTTP(S) URL (http:// or https://) (got "git@example.com:x.git")',
    'f.yaml:2:11: identity: must be one of "imds" or {role, environment, instanceId}, got "ec2"']],
  ["config: static identity missing fields", "config", "repo: https://x\nidentity: { role: web }\n", [
    "f.yaml:2:1: identity.environment: required, but missing",
    "f.yaml:2:1: identity.instanceId: required, but missing"]],
];

describe("parse: one clear line per problem, at the offending node", () => {
  for (const [name, kind, text, want] of CASES) {
    test(name, () => expect(problems(kind, text)).toEqual(want));
  }
});

describe("parse: files that are not ops files", () => {
  test("a file over the size limit is refused before parsing", () => {
    const big = new Uint8Array(10 * 1024 * 1024).fill(0x61);
    expect(problems("manifest", big)).toEqual(["f.yaml: file is 10.0 MiB, over the 1 MiB limit: ops files are small text files; is this the right file?"]);
    expect(problems("manifest", "a".repeat(MAX_FILE_BYTES + 1))[0]).toContain("over the 1 MiB limit");
  });
  test("the real size counts when only the head was read", () => {
    const d = decodeText(new Uint8Array([0x61]), "f.yaml", 5 * 1024 * 1024);
    expect(d.ok ? "" : formatProblem(d.problems[0]!)).toContain("file is 5.0 MiB");
  });
  test("NUL bytes: not a text file", () => {
    expect(problems("role", new Uint8Array([0x61, 0x3a, 0x00, 0x01]))).toEqual(["f.yaml: not a text file (it contains NUL bytes): expected YAML text in UTF-8"]);
    expect(problems("role", "a: b\0")).toEqual(["f.yaml: not a text file (it contains NUL bytes): expected YAML text in UTF-8"]);
  });
  test("invalid UTF-8: not a text file", () => {
    expect(problems("role", new Uint8Array([0x61, 0x3a, 0x20, 0xff, 0xfe]))).toEqual(["f.yaml: not a text file (it is not valid UTF-8): expected YAML text in UTF-8"]);
  });
  test("UTF-8 bytes with a BOM parse", () => {
    const r = parseManifest(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(`commit: ${C}\n`)]), "f.yaml");
    expect(r.ok && r.value.commit).toBe(C);
  });
});

describe("parse: valid files come back typed, durations in milliseconds", () => {
  test("a manifest with defaults filled in", () => {
    const r = parseManifest(`commit: ${C}\nrollout: { waves: [1, 25%, 100%] }\nroles:\n  web: { env: { PORT: 8080 } }\n`, "m.yaml");
    if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
    expect(r.value).toEqual({ commit: C, poll: 30_000, rollout: { waves: [1, "25%", "100%"], bake: 120_000, deadline: 900_000, maxFailures: 1, onFailure: "halt", store: "tags", lease: 120_000 }, roles: { web: { env: { PORT: "8080" } } } });
  });
  test("a role with a health check gets its timings", () => {
    const r = parseRole("processes:\n  web:\n    run: bun app/server.ts\n    health: { http: /up }\n", "r.yaml");
    if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
    expect(r.value.processes.web!.health).toEqual({ http: "/up", interval: 5000, timeout: 2000, pass: 1, fail: 3, window: 3, deadline: 60_000 });
    expect(r.value.user).toBe("agent-app");
  });
  test("an explicit empty role is valid (only an empty file is not)", () => {
    expect(parseRole("{}\n", "r.yaml").ok).toBe(true);
  });
});

describe("did you mean", () => {
  const TABLE: [string, string[], string | undefined][] = [
    ["intervall", ["interval", "timeout"], "interval"],
    ["pol", ["poll", "commit"], "poll"],
    ["TERM", ["SIGTERM", "SIGINT"], "SIGTERM"],
    ["Commit", ["commit"], "commit"],
    ["zzzzzz", ["commit", "poll"], undefined],
    ["x", ["y"], "y"],
    ["ab", ["xy"], undefined],
  ];
  for (const [word, known, want] of TABLE) test(`${word} -> ${want}`, () => expect(closest(word, known)).toBe(want));
  test("edit distance", () => {
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("same", "same")).toBe(0);
    expect(editDistance("wbe", "web")).toBe(1);
  });
});
