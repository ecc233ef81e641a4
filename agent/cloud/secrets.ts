// The SSM Parameter Store and Secrets Manager calls the agent makes, on the real SDK clients,
// loaded on first use (a dynamic import): a role without secrets never loads them. Values are
// returned to the caller and never logged. Failures become AgentErrors naming the parameter or
// secret and, for a denied call, the IAM action to grant.
import type * as SsmSdk from "@aws-sdk/client-ssm";
import type * as SecretsManagerSdk from "@aws-sdk/client-secrets-manager";
import { AgentError, errorMessage } from "../core/errors.ts";
import { loadSecretsManagerSdk, loadSsmSdk } from "./sdk.ts";

export interface Parameter { name: string; value: string; version: string }

export interface SecretsClient {
  /** GetParameters (at most 10 names), decrypted. `missing` lists the names SSM does not have. */
  getParameters(names: string[]): Promise<{ found: Parameter[]; missing: string[] }>;
  /** One page of GetParametersByPath (not recursive), decrypted. */
  getParametersByPath(path: string, nextToken?: string): Promise<{ found: Parameter[]; nextToken?: string }>;
  /** GetSecretValue of the current version: its SecretString and VersionId. */
  getSecretValue(id: string): Promise<{ value: string; version: string }>;
}

export interface SecretsClientOptions {
  region: string;
  endpoints: { ssm: string | null; secretsmanager: string | null };
  /** Absent: the SDK's default chain (environment, profile, then the instance role through IMDS). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

const THROTTLE = new Set(["ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"]);
const DENIED = new Set(["AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "UnrecognizedClientException", "InvalidSignatureException"]);

/** Thrown for a ThrottlingException: the caller backs off and tries again. */
export class Throttled extends AgentError {
  constructor(action: string, detail: string) {
    super("SecretsThrottled", `${action} was throttled (${detail}); the SSM default is 40 requests/s per account and region, shared by the fleet`, { kind: "after", ms: 30_000 });
  }
}

/** Map an SDK failure to an AgentError that names what was asked for and what to do. Exported for tests. */
export function mapSecretsError(action: string, what: string, e: unknown): AgentError {
  if (e instanceof AgentError) return e;
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  const code = err.name ?? "Unknown";
  const detail = `${code}: ${errorMessage(e)}`;
  if (THROTTLE.has(code)) return new Throttled(action, detail);
  if (DENIED.has(code)) {
    const iam = action.startsWith("secretsmanager:") ? action : `ssm:${action.replace(/^ssm:/, "")}`;
    return new AgentError("SecretAccessDenied", `${what}: the instance role may not call ${iam} (${detail}): grant it in the role's policy (docs/aws.md)${iam.startsWith("ssm:") ? ", and kms:Decrypt for SecureStrings under a customer key" : ""}`, { kind: "after", ms: 60_000 });
  }
  if (code === "ParameterNotFound" || code === "ResourceNotFoundException") {
    return new AgentError("SecretNotFound", `${what} does not exist (${action}: ${code}): create it in this account and region, or fix the reference`, { kind: "after", ms: 60_000 });
  }
  if (code === "DecryptionFailure" || code === "ParameterVersionNotFound" || code === "InvalidKeyId") {
    return new AgentError("SecretNotReadable", `${what} cannot be read (${detail}): check its KMS key and the kms:Decrypt grant`, { kind: "after", ms: 60_000 });
  }
  return new AgentError("SecretsUnavailable", `${action} for ${what} failed (${detail})`, { kind: "transient" });
}

export async function createSecretsClient(o: SecretsClientOptions): Promise<SecretsClient> {
  // One try per call: secrets/fetch.ts backs off on throttling itself, with jitter, and counts calls.
  const common = { region: o.region, credentials: o.credentials, maxAttempts: 1,
    requestHandler: { connectionTimeout: 2000, requestTimeout: 5000 } };
  let ssm: Promise<{ send: (c: any) => Promise<any>; m: typeof SsmSdk }> | null = null;
  let sm: Promise<{ send: (c: any) => Promise<any>; m: typeof SecretsManagerSdk }> | null = null;
  const ssmClient = () => ssm ??= loadSsmSdk().then((m) => {
    const c = new m.SSMClient({ ...common, ...(o.endpoints.ssm ? { endpoint: o.endpoints.ssm } : {}) });
    return { send: (x: any) => c.send(x), m };
  });
  const smClient = () => sm ??= loadSecretsManagerSdk().then((m) => {
    const c = new m.SecretsManagerClient({ ...common, ...(o.endpoints.secretsmanager ? { endpoint: o.endpoints.secretsmanager } : {}) });
    return { send: (x: any) => c.send(x), m };
  });
  const param = (p: { Name?: string; Value?: string; Version?: number }, what: string): Parameter => {
    if (!p.Name || p.Value === undefined || p.Version === undefined) throw new AgentError("SecretsUnavailable", `SSM answered ${what} without Name, Value or Version`);
    return { name: p.Name, value: p.Value, version: String(p.Version) };
  };
  return {
    async getParameters(names) {
      const { send, m } = await ssmClient();
      try {
        const out = await send(new m.GetParametersCommand({ Names: names, WithDecryption: true }));
        return { found: (out.Parameters ?? []).map((p: any) => param(p, "GetParameters")), missing: out.InvalidParameters ?? [] };
      } catch (e) {
        throw mapSecretsError("ssm:GetParameters", names.length === 1 ? `SSM parameter ${names[0]}` : `SSM parameters ${names.join(", ")}`, e);
      }
    },
    async getParametersByPath(path, nextToken) {
      const { send, m } = await ssmClient();
      try {
        const out = await send(new m.GetParametersByPathCommand({ Path: path, Recursive: false, WithDecryption: true, MaxResults: 10, NextToken: nextToken }));
        return { found: (out.Parameters ?? []).map((p: any) => param(p, "GetParametersByPath")), nextToken: out.NextToken || undefined };
      } catch (e) {
        throw mapSecretsError("ssm:GetParametersByPath", `SSM path ${path}`, e);
      }
    },
    async getSecretValue(id) {
      const { send, m } = await smClient();
      try {
        const out = await send(new m.GetSecretValueCommand({ SecretId: id }));
        if (out.SecretString === undefined) {
          throw new AgentError("SecretInvalid", `secret ${id} has no SecretString (a binary secret): the agent passes text; store it as a string`, { kind: "terminal" });
        }
        if (!out.VersionId) throw new AgentError("SecretsUnavailable", `Secrets Manager answered GetSecretValue for ${id} without a VersionId`);
        return { value: out.SecretString, version: out.VersionId };
      } catch (e) {
        throw mapSecretsError("secretsmanager:GetSecretValue", `secret ${id}`, e);
      }
    },
  };
}
