// Concurrent callers of one action share a single run: `agent sync` twice at once polls once,
// and both callers get that poll's answer.

/** Wrap fn so that calls made while a run is in flight get the same promise. Never runs fn twice at once. */
export function coalesce<T>(fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () => {
    running ??= fn().finally(() => { running = null; });
    return running;
  };
}
