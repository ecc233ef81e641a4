// A stand-in for Secrets Manager (JSON 1.1): GetSecretValue by name or ARN, the current version
// (AWSCURRENT) or a given VersionId, JSON secret strings. Faults: throttling, a denied caller,
// down. 127.0.0.1 only.
import { randomUUID } from "node:crypto";
import { serveJson, JsonFault, type JsonCall, type JsonFaults } from "./aws-json.ts";
import { serveFromCli } from "./cli.ts";

export interface SmSecret { name: string; arn: string; versions: { id: string; value: string }[] }

export interface SecretsManagerServer {
  url: string;
  port: number;
  secrets: Map<string, SmSecret>;
  /** Create or update a secret (a new VersionId each time); returns its ARN and the new version. */
  put(name: string, value: string | Record<string, unknown>): { arn: string; version: string };
  faults: JsonFaults & { deny: Set<string> };
  calls: JsonCall[];
  stop(): Promise<void>;
}

const ACCOUNT = "123456789012";

export async function startSecretsManager(opts: { port?: number; region?: string } = {}): Promise<SecretsManagerServer> {
  const region = opts.region ?? "us-east-1";
  const secrets = new Map<string, SmSecret>();
  const calls: JsonCall[] = [];
  const faults: SecretsManagerServer["faults"] = { throttle: 0, down: false, deny: new Set() };
  // by name, full ARN, or partial ARN (without the random suffix), as the service does
  const find = (id: string) => secrets.get(id) ?? [...secrets.values()].find((s) => s.arn === id || s.arn.slice(0, -7) === id);
  const server = serveJson("secretsmanager", calls, faults, opts.port ?? 0, {
    GetSecretValue(b) {
      const s = find(b.SecretId);
      if (faults.deny.has("*") || faults.deny.has(b.SecretId) || (s && (faults.deny.has(s.name) || faults.deny.has(s.arn)))) {
        throw new JsonFault("AccessDeniedException", `User: arn:aws:sts::${ACCOUNT}:assumed-role/agent/i-0 is not authorized to perform: secretsmanager:GetSecretValue on resource: ${b.SecretId}`);
      }
      if (!s) throw new JsonFault("ResourceNotFoundException", "Secrets Manager can't find the specified secret.");
      const v = b.VersionId ? s.versions.find((x) => x.id === b.VersionId) : s.versions.at(-1);
      if (!v) throw new JsonFault("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId");
      return { ARN: s.arn, Name: s.name, VersionId: v.id, SecretString: v.value, VersionStages: v === s.versions.at(-1) ? ["AWSCURRENT"] : [], CreatedDate: 1764633600 };
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`, port: server.port!, secrets, faults, calls,
    put(name, value) {
      const s = secrets.get(name) ?? { name, arn: `arn:aws:secretsmanager:${region}:${ACCOUNT}:secret:${name}-${randomUUID().slice(0, 6)}`, versions: [] };
      const version = randomUUID();
      s.versions.push({ id: version, value: typeof value === "string" ? value : JSON.stringify(value) });
      secrets.set(name, s);
      return { arn: s.arn, version };
    },
    stop: async () => { await server.stop(true); },
  };
}

if (import.meta.main) {
  serveFromCli("secretsmanager", { port: { type: "string" }, region: { type: "string" } }, (v) =>
    startSecretsManager({ port: v.port ? Number(v.port) : 0, region: v.region }));
}
