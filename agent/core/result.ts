// Observed failures are data: a resource whose observation failed is blocked in the plan,
// never guessed at.
import type { AgentError } from "./errors.ts";

export type Observed<T> = { ok: true; value: T } | { ok: false; error: AgentError };

export const observed = <T>(value: T): Observed<T> => ({ ok: true, value });
export const failed = <T = never>(error: AgentError): Observed<T> => ({ ok: false, error });
