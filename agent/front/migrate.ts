// net.ipv4.tcp_migrate_req: whether connections waiting in a closing SO_REUSEPORT listener's
// accept queue move to another listener of the group (on) or are reset (off). The front closes
// such a listener after a handover and after a TLS renewal's second listener is up.
import { readFileSync, writeFileSync } from "node:fs";

const MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req";

/** "set": written 1 now; "on": was 1; "unavailable": no such setting (Linux < 5.14) or not writable. */
export type MigrateReq = "set" | "on" | "unavailable";

/**
 * With tcp_migrate_req=1 (Linux 5.14+), connections waiting in a closing SO_REUSEPORT listener's
 * accept queue move to another listener of the group instead of being reset.
 */
export function enableMigrateReq(): MigrateReq {
  try {
    if (readFileSync(MIGRATE_REQ, "utf8").trim() === "1") return "on";
    writeFileSync(MIGRATE_REQ, "1\n");
    return "set";
  } catch {
    return "unavailable";
  }
}

export function readMigrateReq(): MigrateReq {
  try { return readFileSync(MIGRATE_REQ, "utf8").trim() === "1" ? "on" : "unavailable"; } catch { return "unavailable"; }
}

