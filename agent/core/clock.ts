// Time and randomness are injected so that decisions (backoff, health, rollout) are testable.

export interface Clock {
  now(): number;                       // epoch milliseconds
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  random(): number;                    // [0, 1), for jitter
}

export const systemClock: Clock = {
  now: () => Date.now(),
  random: () => Math.random(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const t = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
    }),
};

/** A clock that only moves when told to: for unit tests. */
export class ManualClock implements Clock {
  constructor(public t = 0, private seq: number[] = [0.5]) {}
  private i = 0;
  now() { return this.t; }
  advance(ms: number) { this.t += ms; }
  random() { const v = this.seq[this.i % this.seq.length] ?? 0.5; this.i++; return v; }
  async sleep(ms: number) { this.t += ms; }
}
