// The AWS JSON 1.1 protocol shared by the SSM and Secrets Manager stand-ins: `POST /` with
// `X-Amz-Target: <Service>.<Action>`, a JSON body, answers as JSON, errors as HTTP 400 with
// `{"__type": Code, "message": ...}` and `x-amzn-errortype`. Requests must be SigV4-signed.

export interface JsonCall {
  action: string;
  body: Record<string, any>;
  status: number;
  /** The access key id from the SigV4 Credential= of the request. */
  accessKeyId: string;
}

export class JsonFault extends Error {
  constructor(readonly code: string, message: string, readonly status = 400) { super(message); }
}

export interface JsonFaults {
  /** The next N requests answer ThrottlingException. */
  throttle: number;
  /** Every request answers 503 with no JSON: the service is unavailable. */
  down: boolean;
}

export function serveJson(prefix: string, calls: JsonCall[], faults: JsonFaults, port: number,
  actions: Record<string, (body: Record<string, any>, call: JsonCall) => unknown>) {
  return Bun.serve({
    hostname: "127.0.0.1", port,
    async fetch(req) {
      if (faults.down) return new Response("Service Unavailable", { status: 503 });
      const target = req.headers.get("x-amz-target") ?? "";
      const credential = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\//.exec(req.headers.get("authorization") ?? "");
      const reply = (status: number, body: unknown, code?: string) => new Response(JSON.stringify(body), {
        status, headers: { "content-type": "application/x-amz-json-1.1", ...(code ? { "x-amzn-errortype": code } : {}) },
      });
      if (req.method !== "POST" || !target.startsWith(`${prefix}.`)) return reply(400, { __type: "UnknownOperationException", message: `unknown target ${target}` }, "UnknownOperationException");
      if (!credential) return reply(400, { __type: "MissingAuthenticationTokenException", message: "Request is missing Authentication Token" }, "MissingAuthenticationTokenException");
      let body: Record<string, any> = {};
      try { body = JSON.parse((await req.text()) || "{}"); } catch { return reply(400, { __type: "SerializationException", message: "not JSON" }, "SerializationException"); }
      const action = target.slice(prefix.length + 1);
      const call: JsonCall = { action, body, status: 200, accessKeyId: credential[1]! };
      calls.push(call);
      try {
        if (faults.throttle > 0) { faults.throttle--; throw new JsonFault("ThrottlingException", "Rate exceeded"); }
        const handler = actions[action];
        if (!handler) throw new JsonFault("UnknownOperationException", `${action} is not served by this stand-in`);
        return reply(200, handler(body, call));
      } catch (e) {
        const f = e instanceof JsonFault ? e : new JsonFault("InternalServerError", String(e), 500);
        call.status = f.status;
        return reply(f.status, { __type: f.code, message: f.message }, f.code);
      }
    },
  });
}
