// roles.<role>.targetGroups in the manifest: ARN shape, port range, drain default, clear errors.
import { expect, test } from "bun:test";
import { formatProblem, parseFile } from "../../agent/manifest/parse.ts";

const ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";
const doc = (tg: string) => `commit: ${"a".repeat(40)}\nroles:\n  web:\n    targetGroups:\n${tg}`;
const problems = (text: string) => {
  const r = parseFile("manifest", text, "manifests/staging.yaml");
  return r.ok ? [] : r.problems.map(formatProblem);
};

test("a target group binding parses, drain defaults to 30s", () => {
  const r = parseFile("manifest", doc(`      - { arn: "${ARN}", port: 8080 }\n`), "manifests/staging.yaml");
  expect(r.ok).toBe(true);
  if (r.ok) expect(r.value.roles.web!.targetGroups).toEqual([{ arn: ARN, port: 8080, drain: 30_000 }]);
  const d = parseFile("manifest", doc(`      - { arn: "${ARN}", port: 80, drain: 2m }\n`), "manifests/staging.yaml");
  if (d.ok) expect(d.value.roles.web!.targetGroups![0]!.drain).toBe(120_000);
  expect(d.ok).toBe(true);
});

test("a bad ARN names the field and shows the shape", () => {
  const p = problems(doc(`      - { arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/0123456789abcdef", port: 8080 }\n`));
  expect(p.join("\n")).toContain("roles.web.targetGroups.0.arn");
  expect(p.join("\n")).toContain("must be a target group ARN like arn:aws:elasticloadbalancing:");
});

test("a port out of range, a missing port, an unknown key", () => {
  expect(problems(doc(`      - { arn: "${ARN}", port: 70000 }\n`)).join("\n")).toContain("roles.web.targetGroups.0.port");
  expect(problems(doc(`      - { arn: "${ARN}" }\n`)).join("\n")).toContain("roles.web.targetGroups.0.port");
  expect(problems(doc(`      - { arn: "${ARN}", port: 80, weight: 3 }\n`)).join("\n")).toContain("weight");
});
