// A stand-in for SSM Parameter Store (JSON 1.1): GetParameter, GetParameters (at most 10 names),
// GetParametersByPath (paginated, Recursive or not), versions that grow with every put,
// SecureStrings that come back decrypted only WithDecryption. Faults: throttling, a denied
// caller (AccessDeniedException), down. 127.0.0.1 only.
import { serveJson, JsonFault, type JsonCall, type JsonFaults } from "./aws-json.ts";
import { serveFromCli } from "./cli.ts";

export interface SsmParameter { name: string; type: "String" | "SecureString" | "StringList"; versions: string[] }

export interface SsmServer {
  url: string;
  port: number;
  parameters: Map<string, SsmParameter>;
  /** Create or update a parameter: each put is a new version (1, 2, …). */
  put(name: string, value: string, type?: SsmParameter["type"]): number;
  remove(name: string): void;
  faults: JsonFaults & {
    /** Parameter names (or prefixes ending in '/', or '*') the caller may not read: AccessDeniedException. */
    deny: Set<string>;
  };
  calls: JsonCall[];
  stop(): Promise<void>;
}

const ACCOUNT = "123456789012";
const encrypt = (v: string) => `AQICAH${Buffer.from(v).toString("base64")}`;   // looks like KMS ciphertext; not the value

export async function startSsm(opts: { port?: number; region?: string } = {}): Promise<SsmServer> {
  const region = opts.region ?? "us-east-1";
  const parameters = new Map<string, SsmParameter>();
  const calls: JsonCall[] = [];
  const faults: SsmServer["faults"] = { throttle: 0, down: false, deny: new Set() };
  const arn = (name: string) => `arn:aws:ssm:${region}:${ACCOUNT}:parameter${name.startsWith("/") ? "" : "/"}${name}`;
  const denied = (name: string) => [...faults.deny].some((d) => d === "*" || d === name || (d.endsWith("/") && name.startsWith(d)));
  const check = (action: string, name: string) => {
    if (denied(name)) throw new JsonFault("AccessDeniedException", `User: arn:aws:sts::${ACCOUNT}:assumed-role/agent/i-0 is not authorized to perform: ssm:${action} on resource: ${arn(name)} because no identity-based policy allows the ssm:${action} action`);
  };
  const view = (p: SsmParameter, decrypt: boolean) => {
    const value = p.versions.at(-1)!;
    return {
      Name: p.name, Type: p.type, Value: p.type === "SecureString" && !decrypt ? encrypt(value) : value, Version: p.versions.length,
      ARN: arn(p.name), DataType: "text", LastModifiedDate: 1764633600,
    };
  };
  const server = serveJson("AmazonSSM", calls, faults, opts.port ?? 0, {
    GetParameter(b) {
      check("GetParameter", b.Name);
      const p = parameters.get(b.Name);
      if (!p) throw new JsonFault("ParameterNotFound", "");
      return { Parameter: view(p, !!b.WithDecryption) };
    },
    GetParameters(b) {
      const names: string[] = b.Names ?? [];
      if (names.length < 1 || names.length > 10) throw new JsonFault("ValidationException", `1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10`);
      for (const n of names) check("GetParameters", n);
      const found = names.filter((n) => parameters.has(n));
      return { Parameters: found.map((n) => view(parameters.get(n)!, !!b.WithDecryption)), InvalidParameters: names.filter((n) => !parameters.has(n)) };
    },
    GetParametersByPath(b) {
      const path: string = b.Path;
      if (!path?.startsWith("/")) throw new JsonFault("ValidationException", "Parameter path: must begin with /");
      check("GetParametersByPath", path.endsWith("/") ? path : `${path}/`);
      const prefix = path.endsWith("/") ? path : `${path}/`;
      const all = [...parameters.values()].filter((p) => p.name.startsWith(prefix) && (b.Recursive || !p.name.slice(prefix.length).includes("/")))
        .sort((x, y) => x.name.localeCompare(y.name));
      const max = Math.min(10, b.MaxResults ?? 10);
      const start = b.NextToken ? Number(Buffer.from(b.NextToken, "base64").toString()) : 0;
      const page = all.slice(start, start + max);
      const next = start + max < all.length ? Buffer.from(String(start + max)).toString("base64") : undefined;
      return { Parameters: page.map((p) => view(p, !!b.WithDecryption)), ...(next ? { NextToken: next } : {}) };
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`, port: server.port!, parameters, faults, calls,
    put(name, value, type = "String") {
      const p = parameters.get(name) ?? { name, type, versions: [] };
      p.type = type;
      p.versions.push(value);
      parameters.set(name, p);
      return p.versions.length;
    },
    remove: (name) => { parameters.delete(name); },
    stop: async () => { await server.stop(true); },
  };
}

if (import.meta.main) {
  serveFromCli("ssm", { port: { type: "string" }, region: { type: "string" } }, (v) =>
    startSsm({ port: v.port ? Number(v.port) : 0, region: v.region }));
}
