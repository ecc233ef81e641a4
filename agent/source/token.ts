// Small pieces of the source the daemon needs without the git library: the poll delay and the token file.
import fs from "node:fs";
import { AgentError } from "../core/errors.ts";

/** Pure: the delay before the next poll, `pollMs` ± 10% jitter from `random` in [0, 1). */
export function nextPollDelay(pollMs: number, random: number): number {
  return Math.max(0, Math.round(pollMs * (0.9 + 0.2 * random)));
}

/**
 * Read the token for HTTPS auth from config auth.tokenFile (trimmed). A missing, unreadable or
 * empty file is SourceAuthFailed naming the path: an error of this tick, not of the agent (the
 * next poll reads the file again; processes keep running).
 */
export function readToken(tokenFile: string): string {
  let text: string;
  try { text = fs.readFileSync(tokenFile, "utf8").trim(); } catch (e) {
    throw AgentError.terminal("SourceAuthFailed", `cannot read the git token file ${tokenFile} (${(e as { code?: string }).code ?? "error"}); write the token there or fix auth.tokenFile in the agent's config; the agent reads it again at the next poll`);
  }
  if (!text) {
    throw AgentError.terminal("SourceAuthFailed", `the git token file ${tokenFile} is empty; write the token there; the agent reads it again at the next poll`);
  }
  return text;
}
