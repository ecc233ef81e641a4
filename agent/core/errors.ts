// One error type for the whole agent. The reason is a PascalCase word that status and logs
// show; the retry class tells the loop what to do next, so nothing ever parses error strings.

export type Retry =
  | { kind: "transient" }            // try again on the next tick
  | { kind: "terminal" }             // retrying will not help until the input changes
  | { kind: "after"; ms: number };   // try again after this delay

export class AgentError extends Error {
  override readonly name = "AgentError";
  constructor(
    readonly reason: string,
    message: string,
    readonly retry: Retry = { kind: "transient" },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  static terminal(reason: string, message: string, cause?: unknown): AgentError {
    return new AgentError(reason, message, { kind: "terminal" }, { cause });
  }
}

/** Turn anything thrown into an AgentError, keeping the original as the cause. */
export function toAgentError(e: unknown, reason = "Internal"): AgentError {
  if (e instanceof AgentError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new AgentError(reason, message, { kind: "transient" }, { cause: e });
}

/** Thrown by the CLI for a usage mistake: exit code 2, message to stderr. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
