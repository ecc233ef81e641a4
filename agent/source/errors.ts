// What went wrong talking to the git server or the object store, as AgentErrors with the retry
// class the loop needs. Secrets never reach a message: every text passes through redact().
import { AgentError } from "../core/errors.ts";

/** Replace every occurrence of each secret with "***". */
export function redact(text: string, secrets: (string | undefined | null)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join("***");
  return out;
}

/** Map an error from isomorphic-git, fetch or the file system to an AgentError. */
export function sourceError(e: unknown, what: string, url: string, secrets: (string | undefined | null)[]): AgentError {
  if (e instanceof AgentError) return e;
  const err = e as { code?: string; name?: string; message?: string; data?: { statusCode?: number }; errors?: unknown[] };
  // isomorphic-git's checkout wraps per-file failures in a MultipleGitError: look inside.
  const inner = Array.isArray(err?.errors) ? err.errors as { code?: string; message?: string }[] : [];
  const msg = redact([String(err?.message ?? e), ...inner.map((x) => `${x?.code ?? ""} ${x?.message ?? x}`)].join("; "), secrets);
  const cleanUrl = redact(url.replace(/\/\/[^@/]*@/, "//"), secrets);
  const status = err?.code === "HttpError" ? err.data?.statusCode : undefined;
  if (status === 401 || status === 403) {
    return AgentError.terminal("SourceAuthFailed",
      `${what}: ${cleanUrl} refused the credentials (HTTP ${status}); check auth.tokenFile and auth.username in the agent's config`);
  }
  if (status === 404) {
    return AgentError.terminal("SourceNotFound",
      `${what}: no repository at ${cleanUrl} (HTTP 404); check repo in the agent's config`);
  }
  if (err?.code === "ENOSPC" || /ENOSPC|no space left/i.test(msg)) {
    return new AgentError("DiskFull", `${what}: the disk holding the state directory is full; free space and the agent retries`,
      { kind: "transient" });
  }
  if (status !== undefined || err?.name === "TimeoutError" || err?.name === "AbortError" || isNetworkError(err)) {
    const why = status !== undefined ? `HTTP ${status}` : msg;
    return new AgentError("SourceUnreachable", `${what}: ${cleanUrl} did not answer (${why}); the agent retries on the next poll`,
      { kind: "transient" });
  }
  return new AgentError("SourceFailed", `${what}: ${msg}`, { kind: "transient" });
}

function isNetworkError(err: { code?: string; message?: string } | undefined): boolean {
  const m = `${err?.code ?? ""} ${err?.message ?? ""}`;
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|ConnectionRefused|ConnectionClosed|Unable to connect|socket|fetch failed|network/i.test(m);
}
