// The registry's histogram: cumulative buckets, with and without labels (the unlabelled one is
// counted without building a key per observation), and reset.
import { expect, test } from "bun:test";
import { Registry } from "../../agent/metrics/registry.ts";

test("an unlabelled histogram counts each value in every bucket from its own up, and reset forgets it", () => {
  const r = new Registry();
  const h = r.histogram("t_seconds", "test", [0.1, 1, 0.5]);   // given unsorted
  for (const v of [0.05, 0.1, 0.3, 0.7, 2]) h.observe(v);
  expect(h.render()).toEqual([
    "# HELP t_seconds test", "# TYPE t_seconds histogram",
    't_seconds_bucket{le="0.1"} 2', 't_seconds_bucket{le="0.5"} 3', 't_seconds_bucket{le="1"} 4', 't_seconds_bucket{le="+Inf"} 5',
    "t_seconds_sum 3.15", "t_seconds_count 5",
  ]);
  h.reset();
  h.observe(0.2);
  expect(h.render().filter((l) => l.includes("_count"))).toEqual(["t_seconds_count 1"]);
});

test("a labelled histogram keeps a series per label set and refuses missing labels", () => {
  const h = new Registry().histogram("l_seconds", "test", [1], ["port"]);
  h.observe(0.5, { port: "80" });
  h.observe(3, { port: "80" });
  h.observe(0.5, { port: "443" });
  expect(h.render().filter((l) => l.includes("_count"))).toEqual(['l_seconds_count{port="80"} 2', 'l_seconds_count{port="443"} 1']);
  expect(() => h.observe(1)).toThrow("takes labels [port]");
});
