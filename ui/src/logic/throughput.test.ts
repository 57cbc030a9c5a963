import { describe, expect, it } from "vitest";
import type { Sample } from "../generated/bindings";
import { graph, linePath, niceMax, rates } from "./throughput";

const s = (unix_ms: number, rx_bytes: number, tx_bytes: number): Sample => ({ unix_ms, rx_bytes, tx_bytes });

describe("rates", () => {
  it("turns counters into bytes per second over the real interval", () => {
    const points = rates([s(0, 0, 0), s(1000, 5000, 1000), s(3000, 9000, 1000)]);
    expect(points.map((p) => [p.unixMs, p.rx, p.tx])).toEqual([
      [1000, 5000, 1000],
      [3000, 2000, 0],
    ]);
    expect(points.map((p) => p.breakBefore)).toEqual([true, false]);
  });

  it("skips counter resets, repeated timestamps and long gaps, and breaks the line there", () => {
    const points = rates([
      s(0, 100, 100),
      s(1000, 200, 200),
      s(2000, 50, 60), // the helper reset its counters
      s(3000, 150, 160),
      s(3000, 150, 160), // same instant twice
      s(20_000, 250, 260), // 17 s without stats
      s(21_000, 350, 360),
    ]);
    expect(points.map((p) => [p.unixMs, p.rx, p.breakBefore])).toEqual([
      [1000, 100, true],
      [3000, 100, true],
      [21_000, 100, true],
    ]);
  });

  it("needs two samples for a rate", () => {
    expect(rates([])).toEqual([]);
    expect(rates([s(0, 1, 1)])).toEqual([]);
  });
});

describe("niceMax", () => {
  it("rounds up to 1, 2 or 5 times a power of ten, with a floor", () => {
    expect(niceMax(0)).toBe(1000);
    expect(niceMax(999)).toBe(1000);
    expect(niceMax(1001)).toBe(2000);
    expect(niceMax(2500)).toBe(5000);
    expect(niceMax(50_000)).toBe(50_000);
    expect(niceMax(51_000)).toBe(100_000);
    expect(niceMax(Number.NaN)).toBe(1000);
  });
});

describe("linePath", () => {
  const box = { width: 100, height: 50, nowMs: 10_000, spanMs: 10_000, max: 1000 };
  it("maps time to x and rate to y, from the bottom", () => {
    const path = linePath(
      [
        { unixMs: 0, rx: 0, tx: 0, breakBefore: true },
        { unixMs: 5000, rx: 500, tx: 0, breakBefore: false },
        { unixMs: 10_000, rx: 2000, tx: 0, breakBefore: false },
      ],
      box,
      "rx",
    );
    expect(path).toBe("M0 50 L50 25 L100 0");
  });

  it("lifts the pen at breaks and drops points older than the span", () => {
    const path = linePath(
      [
        { unixMs: -1000, rx: 100, tx: 0, breakBefore: true },
        { unixMs: 1000, rx: 100, tx: 0, breakBefore: false },
        { unixMs: 2000, rx: 100, tx: 0, breakBefore: false },
        { unixMs: 8000, rx: 0, tx: 0, breakBefore: true },
      ],
      box,
      "rx",
    );
    expect(path).toBe("M10 45 L20 45 M80 50");
  });
});

describe("graph", () => {
  it("scales to the peak of either direction and reports the latest rates", () => {
    const samples = [s(0, 0, 0), s(1000, 1500, 3000), s(2000, 2000, 3000)];
    const g = graph(samples, { width: 100, height: 50, nowMs: 2000, spanMs: 2000 });
    expect(g.max).toBe(5000);
    expect(g.latest).toMatchObject({ rx: 500, tx: 0 });
    expect(g.rxPath.startsWith("M50 ")).toBe(true);
    expect(graph([], { width: 100, height: 50, nowMs: 0, spanMs: 1 })).toMatchObject({ latest: null, rxPath: "" });
  });
});
