// The DynamoDB rollout store: one item per node (its rollout record) and one per deploy slot, in
// the partition `<environment>#<role>` of the operator's table (sort key `instance`). Reads are one
// strongly consistent Query of the partition (every page); slots are taken, kept alive and given
// back by conditional writes, so two nodes never hold the same slot. docs/fleet.md.
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type * as DynamoDbSdk from "@aws-sdk/client-dynamodb";
import { AgentError, errorMessage } from "../core/errors.ts";
import type { Slot } from "../fleet/lease.ts";
import { loadDynamoDbSdk } from "./sdk.ts";

/** A node's rollout record: what its agent:* tags say with the tags store. */
export interface NodeRecord { instance: string; commit: string | null; state: string | null; failed: string | null; since: string | null; version: string | null }

export interface RolloutTable {
  /** Every node record and slot of the partition: one strongly consistent Query, every page. */
  read(partition: string): Promise<{ nodes: NodeRecord[]; slots: Slot[] }>;
  /** Only the slots (a Query on the `#slot/` prefix: one small page): what a node waiting for one reads. */
  readSlots(partition: string): Promise<Slot[]>;
  /** Write this node's record (PutItem; the last write wins, a node writes only its own). */
  publish(partition: string, record: NodeRecord): Promise<void>;
  /** Delete a node record on condition it still says what `record` says (a node that wrote since keeps its record). false: it changed or is gone. */
  remove(partition: string, record: NodeRecord): Promise<boolean>;
  /** Take `slot` on condition it still reads `expect` (null: no holder). false: another node got there first. */
  take(partition: string, slot: number, self: string, expect: { holder: string; version: number } | null): Promise<boolean>;
  /** Bump the slot's version (the heartbeat); false when this node no longer holds it. */
  beat(partition: string, slot: number, self: string): Promise<boolean>;
  /** Give the slot back (remove its holder) if this node holds it. */
  release(partition: string, slot: number, self: string): Promise<void>;
}

export interface DynamoDbOptions {
  region: string;
  table: string;
  endpoint?: string | null;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Total tries per call (default 4); throttling and 5xx are retried by the SDK with backoff. */
  maxAttempts?: number;
  /** Items per Query page (default: DynamoDB's 1 MB pages); tests set it small. */
  pageSize?: number;
}

export const partitionOf = (environment: string, role: string) => `${environment}#${role}`;
/** Slot items sort before instance ids (`#` < `i`). */
const slotKey = (n: number) => `#slot/${n}`;
const THROTTLE = new Set(["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "LimitExceededException"]);

/** An SDK failure (after its retries) as an AgentError. Exported for tests. */
export function mapDynamoDbError(action: string, table: string, e: unknown): AgentError {
  if (e instanceof AgentError) return e;
  const err = e as { name?: string; $fault?: string; $metadata?: { httpStatusCode?: number } };
  const code = err.name ?? "Unknown";
  const detail = `${code}: ${errorMessage(e)}`;
  if (THROTTLE.has(code)) return new AgentError("DynamoDbThrottled", `DynamoDB ${action} on ${table} was throttled after retries (${detail}); retrying later`, { kind: "transient" }, { cause: e });
  if (code === "ResourceNotFoundException") return new AgentError("RolloutTableMissing", `DynamoDB table ${table} does not exist (${detail}); create it as docs/fleet.md shows, or fix rollout.table in the node config`, { kind: "transient" }, { cause: e });
  if (code === "AccessDeniedException" || code === "UnrecognizedClientException") return new AgentError("DynamoDbUnauthorized", `DynamoDB ${action} on ${table} was refused (${detail}); grant the instance role the policy in docs/aws.md`, { kind: "transient" }, { cause: e });
  return new AgentError("DynamoDbUnavailable", `DynamoDB ${action} on ${table} failed after retries (${detail}); retrying later`, { kind: "transient" }, { cause: e });
}

/** A node record's attributes in the table, as [name, value or null]. */
const RECORD_FIELDS = (r: NodeRecord) => [["commit", r.commit], ["state", r.state], ["failed", r.failed], ["since", r.since], ["agentVersion", r.version]] as const;

const str = (v: AttributeValue | undefined): string | null => (v && "S" in v && v.S ? v.S : null);
const num = (v: AttributeValue | undefined): number => (v && "N" in v && v.N ? Number(v.N) : 0);

export function createRolloutTable(opts: DynamoDbOptions): RolloutTable {
  const T = opts.table;
  let made: Promise<{ sdk: typeof DynamoDbSdk; client: DynamoDBClient }> | null = null;
  const sdk = () => made ??= loadDynamoDbSdk().then((sdk) => ({ sdk, client: new sdk.DynamoDBClient({
    region: opts.region, maxAttempts: opts.maxAttempts ?? 4,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
  }) }));
  const call = async <R>(action: string, f: (s: { sdk: typeof DynamoDbSdk; client: DynamoDBClient }) => Promise<R>): Promise<R> => {
    try { return await f(await sdk()); } catch (e) { throw mapDynamoDbError(action, T, e); }
  };
  const key = (partition: string, instance: string) => ({ rollout: { S: partition }, instance: { S: instance } });
  /** A failed ConditionExpression: an answer, not an error. */
  const conditional = async (action: string, f: (s: { sdk: typeof DynamoDbSdk; client: DynamoDBClient }) => Promise<unknown>): Promise<boolean> => {
    try { await call(action, f); return true; } catch (e) {
      if ((e as AgentError).cause && ((e as AgentError).cause as { name?: string }).name === "ConditionalCheckFailedException") return false;
      throw e;
    }
  };
  async function query(partition: string, slotsOnly: boolean): Promise<{ nodes: NodeRecord[]; slots: Slot[] }> {
    const nodes: NodeRecord[] = [], slots: Slot[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const out = await call("Query", ({ sdk, client }) => client.send(new sdk.QueryCommand({
        TableName: T, ConsistentRead: true, KeyConditionExpression: slotsOnly ? "#p = :p AND begins_with(#i, :s)" : "#p = :p",
        ExpressionAttributeNames: { "#p": "rollout", ...(slotsOnly ? { "#i": "instance" } : {}) },
        ExpressionAttributeValues: { ":p": { S: partition }, ...(slotsOnly ? { ":s": { S: "#slot/" } } : {}) },
        ...(start ? { ExclusiveStartKey: start } : {}), ...(opts.pageSize ? { Limit: opts.pageSize } : {}),
      })));
      for (const it of out.Items ?? []) {
        const id = str(it.instance);
        if (!id) throw new AgentError("DynamoDbBadAnswer", `DynamoDB Query on ${T} answered an item without instance; retrying later`);
        if (id.startsWith("#slot/")) slots.push({ slot: Number(id.slice(6)), holder: str(it.holder), version: num(it.version) });
        else nodes.push({ instance: id, commit: str(it.commit), state: str(it.state), failed: str(it.failed), since: str(it.since), version: str(it.agentVersion) });
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return { nodes, slots };
  }
  return {
    read: (partition) => query(partition, false),
    readSlots: async (partition) => (await query(partition, true)).slots,
    async publish(partition, r) {
      const item: Record<string, AttributeValue> = { ...key(partition, r.instance) };
      for (const [k, v] of RECORD_FIELDS(r)) if (v) item[k] = { S: v };
      await call("PutItem", ({ sdk, client }) => client.send(new sdk.PutItemCommand({ TableName: T, Item: item })));
    },
    remove(partition, r) {
      // Every attribute as read: one the node wrote since (any change) fails the condition.
      const names: Record<string, string> = {}, values: Record<string, AttributeValue> = {}, conds: string[] = ["attribute_exists(#i)"];
      names["#i"] = "instance";
      for (const [k, v] of RECORD_FIELDS(r)) {
        names[`#${k}`] = k;
        if (v) { values[`:${k}`] = { S: v }; conds.push(`#${k} = :${k}`); } else conds.push(`attribute_not_exists(#${k})`);
      }
      return conditional("DeleteItem", ({ sdk, client }) => client.send(new sdk.DeleteItemCommand({
        TableName: T, Key: key(partition, r.instance), ConditionExpression: conds.join(" AND "),
        ExpressionAttributeNames: names, ...(Object.keys(values).length ? { ExpressionAttributeValues: values } : {}),
      })));
    },
    take(partition, slot, self, expect) {
      return conditional("UpdateItem", ({ sdk, client }) => client.send(new sdk.UpdateItemCommand({
        TableName: T, Key: key(partition, slotKey(slot)),
        UpdateExpression: "SET holder = :me, version = if_not_exists(version, :zero) + :one",
        ConditionExpression: expect ? "holder = :h AND version = :v" : "attribute_not_exists(holder)",
        ExpressionAttributeValues: { ":me": { S: self }, ":zero": { N: "0" }, ":one": { N: "1" }, ...(expect ? { ":h": { S: expect.holder }, ":v": { N: String(expect.version) } } : {}) },
      })));
    },
    beat(partition, slot, self) {
      return conditional("UpdateItem", ({ sdk, client }) => client.send(new sdk.UpdateItemCommand({
        TableName: T, Key: key(partition, slotKey(slot)), UpdateExpression: "SET version = version + :one",
        ConditionExpression: "holder = :me", ExpressionAttributeValues: { ":me": { S: self }, ":one": { N: "1" } },
      })));
    },
    async release(partition, slot, self) {
      await conditional("UpdateItem", ({ sdk, client }) => client.send(new sdk.UpdateItemCommand({
        TableName: T, Key: key(partition, slotKey(slot)), UpdateExpression: "REMOVE holder SET version = version + :one",
        ConditionExpression: "holder = :me", ExpressionAttributeValues: { ":me": { S: self }, ":one": { N: "1" } },
      })));
    },
  };
}
