// DynamoDB for tests: dynalite (an emulator on LevelDB, in memory) behind a tiny proxy that can
// answer ProvisionedThroughputExceededException or a 500 on demand (dynalite never throttles).
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
// @ts-expect-error dynalite ships no types
import dynalite from "dynalite";

export interface DynamoDbServer {
  url: string;
  /** The next n requests answer this fault instead of reaching dynalite. */
  fail(n: number, kind: "throttle" | "5xx"): void;
  /** The X-Amz-Target of every request that reached the proxy, in order. */
  calls: string[];
  stop(): Promise<void>;
}

export async function startDynamoDb(): Promise<DynamoDbServer> {
  const db: Server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((r) => db.listen(0, "127.0.0.1", () => r()));
  const dbPort = (db.address() as AddressInfo).port;
  let faults: { n: number; kind: "throttle" | "5xx" } = { n: 0, kind: "throttle" };
  const calls: string[] = [];
  const proxy = createServer((req, res) => {
    calls.push(String(req.headers["x-amz-target"] ?? "").split(".").pop() ?? "");
    if (faults.n > 0) {
      faults.n--;
      req.resume();
      const throttle = faults.kind === "throttle";
      res.writeHead(throttle ? 400 : 500, { "content-type": "application/x-amz-json-1.0" });
      res.end(JSON.stringify(throttle ? { __type: "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", message: "Rate of requests exceeds the allowed throughput." }
        : { __type: "com.amazon.coral.service#InternalFailure", message: "internal failure" }));
      return;
    }
    const up = request({ host: "127.0.0.1", port: dbPort, method: req.method, path: req.url, headers: req.headers }, (r) => { res.writeHead(r.statusCode ?? 500, r.headers); r.pipe(res); });
    up.on("error", () => { res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  return {
    url, calls,
    fail(n, kind) { faults = { n, kind }; },
    async stop() {
      await new Promise<void>((r) => proxy.close(() => r()));
      await new Promise<void>((r) => db.close(() => r()));
    },
  };
}

/** The table docs/fleet.md tells the operator to create (partition key rollout, sort key instance). */
export async function createRolloutTableFor(url: string, table: string): Promise<void> {
  const { DynamoDBClient, CreateTableCommand } = await import("@aws-sdk/client-dynamodb");
  const c = new DynamoDBClient({ region: "us-east-1", endpoint: url, credentials: { accessKeyId: "a", secretAccessKey: "s" } });
  await c.send(new CreateTableCommand({
    TableName: table, BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [{ AttributeName: "rollout", AttributeType: "S" }, { AttributeName: "instance", AttributeType: "S" }],
    KeySchema: [{ AttributeName: "rollout", KeyType: "HASH" }, { AttributeName: "instance", KeyType: "RANGE" }],
  }));
  c.destroy();
}
