// The role's Unix user: look it up, create it (system user, no home, no login) when missing.
// Only root can create users or switch to them; otherwise everything runs as the agent itself.
import { AgentError } from "../core/errors.ts";
import { exec } from "./exec.ts";

export interface UnixUser { name: string; uid: number; gid: number }

export interface UserManager {
  /** The user, created when missing; null when the agent is not root (run as the agent's own user). */
  ensure(name: string): Promise<UnixUser | null>;
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/** Look a user up in the passwd database (getent: also sees NSS users); null when unknown. Read-only. */
export async function lookupUser(name: string): Promise<UnixUser | null> {
  const r = await exec(["getent", "passwd", name], { timeoutMs: 10_000 });
  if (r.code !== 0) return null;
  const f = r.stdout.trim().split("\n")[0]!.split(":");
  if (f.length < 4) return null;
  return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) };
}

/** The real one: useradd --system when missing. Idempotent. */
export class SystemUsers implements UserManager {
  async ensure(name: string): Promise<UnixUser | null> {
    if (!isRoot()) return null;
    const existing = await lookupUser(name);
    if (existing) return existing;
    const r = await exec(["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name], { timeoutMs: 30_000 });
    const made = await lookupUser(name);
    if (!made) {
      throw new AgentError("UserCreateFailed",
        `could not create the role's user ${name} (useradd exited ${r.code}: ${r.stderr.trim()}); create it by hand or change user: in the role`);
    }
    return made;
  }
}
