// The AWS SDK clients are loaded the first time a call needs one, never at start: a node with a
// static identity and no volume or address never loads them (they hold about 20 MB of RSS).
// Every SDK import of the agent goes through here (a test scans for static ones).
import type * as Ec2Sdk from "@aws-sdk/client-ec2";
import type * as ImdsSdk from "@aws-sdk/ec2-metadata-service";
import type * as SsmSdk from "@aws-sdk/client-ssm";
import type * as SecretsManagerSdk from "@aws-sdk/client-secrets-manager";
import type * as DynamoDbSdk from "@aws-sdk/client-dynamodb";
import type * as Elbv2Sdk from "@aws-sdk/client-elastic-load-balancing-v2";

const loaded = new Map<string, Promise<unknown>>();
let onLoad: (name: string, rssDeltaMB: number) => void = () => {};

/** Told once per SDK package when it is first loaded, with the RSS it added (the daemon logs it). */
export function onSdkLoad(fn: (name: string, rssDeltaMB: number) => void): void { onLoad = fn; }

/** The SDK packages loaded so far in this process. */
export const loadedSdks = (): string[] => [...loaded.keys()];

function load<T>(name: string, importer: () => Promise<T>): Promise<T> {
  let p = loaded.get(name) as Promise<T> | undefined;
  if (!p) {
    const before = process.memoryUsage.rss();
    p = importer().then((m) => { onLoad(name, Math.round((process.memoryUsage.rss() - before) / 1048576)); return m; });
    p.catch(() => loaded.delete(name));
    loaded.set(name, p);
  }
  return p;
}

export const loadEc2Sdk = (): Promise<typeof Ec2Sdk> => load("@aws-sdk/client-ec2", () => import("@aws-sdk/client-ec2"));
export const loadImdsSdk = (): Promise<typeof ImdsSdk> => load("@aws-sdk/ec2-metadata-service", () => import("@aws-sdk/ec2-metadata-service"));
// Only for roles with secret references (agent/secrets/).
export const loadSsmSdk = (): Promise<typeof SsmSdk> => load("@aws-sdk/client-ssm", () => import("@aws-sdk/client-ssm"));
export const loadSecretsManagerSdk = (): Promise<typeof SecretsManagerSdk> => load("@aws-sdk/client-secrets-manager", () => import("@aws-sdk/client-secrets-manager"));
// Only for manifests with rollout.store: dynamodb (agent/cloud/dynamodb.ts).
export const loadDynamoDbSdk = (): Promise<typeof DynamoDbSdk> => load("@aws-sdk/client-dynamodb", () => import("@aws-sdk/client-dynamodb"));
// Only for roles bound to target groups (agent/converge/targets.ts).
export const loadElbv2Sdk = (): Promise<typeof Elbv2Sdk> => load("@aws-sdk/client-elastic-load-balancing-v2", () => import("@aws-sdk/client-elastic-load-balancing-v2"));
