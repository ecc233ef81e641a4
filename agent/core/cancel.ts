// Why running work is cancelled, carried as an AbortSignal's reason. Cancelling is not failing:
// "stop" (the agent exits) leaves a running setup step or hook running for the next agent to wait
// for; "superseded" (a newer commit is pinned) stops it gracefully: SIGTERM, then SIGKILL after
// its stop timeout. Neither is a verdict on a commit.

export type CancelKind = "stop" | "superseded";

export class Cancel {
  constructor(readonly kind: CancelKind) {}
}

/** Why `signal` was aborted, or null while it is not. An abort without a Cancel counts as "superseded". */
export function cancelKind(signal: AbortSignal | undefined): CancelKind | null {
  if (!signal?.aborted) return null;
  return signal.reason instanceof Cancel ? signal.reason.kind : "superseded";
}
