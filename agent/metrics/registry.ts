// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
// exposition format (version 0.0.4). No I/O; the metrics server serves render().

export type Labels = Record<string, string>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escape a label value: backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Escape HELP text: backslash and newline. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

abstract class Metric {
  protected series = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[], readonly type: string) {
    if (!NAME.test(name)) throw new Error(`metric name '${name}' is not a valid Prometheus name`);
    for (const l of labelNames) if (!LABEL.test(l) || l.startsWith("__")) throw new Error(`label '${l}' of ${name} is not valid`);
  }

  /** Labels in declared order; throws on a missing or unknown label (a programming error). */
  protected key(labels: Labels): [string, Labels] {
    const given = Object.keys(labels);
    if (given.length !== this.labelNames.length || given.some((k) => !this.labelNames.includes(k))) {
      throw new Error(`${this.name} takes labels [${this.labelNames.join(", ")}], got [${given.join(", ")}]`);
    }
    const ordered: Labels = {};
    for (const l of this.labelNames) ordered[l] = String(labels[l]);
    return [JSON.stringify(ordered), ordered];
  }

  /** Forget every series (e.g. an info metric whose labels changed). */
  reset(): void {
    this.series.clear();
  }

  render(): string[] {
    const out = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const s of this.series.values()) out.push(`${this.name}${labelText(s.labels)} ${formatValue(s.value)}`);
    return out;
  }
}

export class Counter extends Metric {
  constructor(name: string, help: string, labelNames: readonly string[] = []) { super(name, help, labelNames, "counter"); }

  /** Add by (>= 0) to the series with these labels, creating it at 0. */
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new Error(`${this.name}: a counter only goes up (inc by ${by})`);
    const [k, l] = this.key(labels);
    const s = this.series.get(k) ?? { labels: l, value: 0 };
    s.value += by;
    this.series.set(k, s);
  }

  get(labels: Labels = {}): number {
    return this.series.get(this.key(labels)[0])?.value ?? 0;
  }
}

export class Gauge extends Metric {
  constructor(name: string, help: string, labelNames: readonly string[] = []) { super(name, help, labelNames, "gauge"); }

  set(value: number, labels: Labels = {}): void {
    const [k, l] = this.key(labels);
    this.series.set(k, { labels: l, value });
  }

  get(labels: Labels = {}): number | undefined {
    return this.series.get(this.key(labels)[0])?.value;
  }
}

export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

interface HistSeries { labels: Labels; counts: number[]; sum: number; count: number }

export class Histogram extends Metric {
  private hist = new Map<string, HistSeries>();
  /** The one series of a histogram without labels: observed per request (the front), so found without building a key. */
  private unlabelled: HistSeries | null = null;
  readonly buckets: number[];
  constructor(name: string, help: string, buckets: number[] = DEFAULT_BUCKETS, labelNames: readonly string[] = []) {
    super(name, help, labelNames, "histogram");
    if (labelNames.includes("le")) throw new Error(`${name}: 'le' is reserved for histogram buckets`);
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(value: number, labels?: Labels): void {
    const h = !labels && this.labelNames.length === 0 ? (this.unlabelled ??= this.seriesFor({})) : this.seriesFor(labels ?? {});
    const b = this.buckets;
    for (let i = b.length - 1; i >= 0 && value <= b[i]!; i--) h.counts[i]!++;   // sorted: the buckets from `value` up
    h.sum += value;
    h.count++;
  }

  private seriesFor(labels: Labels): HistSeries {
    const [k, l] = this.key(labels);
    let h = this.hist.get(k);
    if (!h) this.hist.set(k, h = { labels: l, counts: this.buckets.map(() => 0), sum: 0, count: 0 });
    return h;
  }

  override reset(): void {
    this.hist.clear();
    this.unlabelled = null;
  }

  override render(): string[] {
    const out = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} histogram`];
    for (const h of this.hist.values()) {
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket${labelText(h.labels, ["le", formatValue(b)])} ${h.counts[i]}`));
      out.push(`${this.name}_bucket${labelText(h.labels, ["le", "+Inf"])} ${h.count}`);
      out.push(`${this.name}_sum${labelText(h.labels)} ${formatValue(h.sum)}`);
      out.push(`${this.name}_count${labelText(h.labels)} ${h.count}`);
    }
    return out;
  }
}

/** Holds metrics by name; render() is the body of GET /metrics. */
export class Registry {
  private metrics = new Map<string, Metric>();

  private add<M extends Metric>(m: M): M {
    if (this.metrics.has(m.name)) throw new Error(`metric ${m.name} is registered twice`);
    this.metrics.set(m.name, m);
    return m;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, buckets?: number[], labelNames: readonly string[] = []): Histogram {
    return this.add(new Histogram(name, help, buckets, labelNames));
  }

  /** The text exposition format, ending with a newline. */
  render(): string {
    return [...this.metrics.values()].flatMap((m) => m.render()).join("\n") + "\n";
  }
}

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
