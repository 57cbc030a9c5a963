// throughput.ts — the live graph's math: byte counters sampled about once a second (summed over
// peers by the backend) become rates, the rates a nice axis, the axis an SVG path.
// Pure functions; see throughput.test.ts.
//
// Counters only grow while a tunnel is up; a counter that goes backwards means the helper
// restarted the tunnel's counters, so that interval is skipped rather than drawn as a negative
// (or absurd) rate. Gaps longer than MAX_GAP_MS (missed stats) break the line instead of
// drawing a misleading straight segment.

import type { Sample } from "../generated/bindings";

/** The graph shows this much history. */
export const GRAPH_SPAN_MS = 5 * 60 * 1000;

/** Samples further apart than this are not joined by a line. */
export const MAX_GAP_MS = 5_000;

export interface RatePoint {
  /** The end of the interval, ms since the epoch. */
  unixMs: number;
  /** Bytes per second received over the interval. */
  rx: number;
  /** Bytes per second sent over the interval. */
  tx: number;
  /** True if this point starts a new line (after a gap or a reset). */
  breakBefore: boolean;
}

/** Rates between consecutive samples. */
export function rates(samples: Sample[]): RatePoint[] {
  const points: RatePoint[] = [];
  let broken = true;
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dtMs = b.unix_ms - a.unix_ms;
    const drx = b.rx_bytes - a.rx_bytes;
    const dtx = b.tx_bytes - a.tx_bytes;
    if (dtMs <= 0 || drx < 0 || dtx < 0 || dtMs > MAX_GAP_MS) {
      broken = true;
      continue;
    }
    points.push({
      unixMs: b.unix_ms,
      rx: (drx * 1000) / dtMs,
      tx: (dtx * 1000) / dtMs,
      breakBefore: broken,
    });
    broken = false;
  }
  return points;
}

/** The smallest 1, 2 or 5 × 10^n at or above `value` (at least 1 kB/s, so idle looks idle). */
export function niceMax(value: number): number {
  const floor = 1000;
  if (!(value > floor)) return floor;
  const exponent = Math.floor(Math.log10(value));
  const base = 10 ** exponent;
  for (const step of [1, 2, 5, 10]) {
    if (step * base >= value) return step * base;
  }
  return 10 * base;
}

export interface GraphBox {
  width: number;
  height: number;
  /** The right edge's time, ms since the epoch (usually now). */
  nowMs: number;
  /** How much time the width covers. */
  spanMs: number;
  /** The rate at the top edge. */
  max: number;
}

/** An SVG path for one direction; empty when there is nothing to draw. */
export function linePath(points: RatePoint[], box: GraphBox, direction: "rx" | "tx"): string {
  const start = box.nowMs - box.spanMs;
  const parts: string[] = [];
  let penDown = false;
  for (const p of points) {
    if (p.unixMs < start) {
      penDown = false;
      continue;
    }
    const x = ((p.unixMs - start) / box.spanMs) * box.width;
    const y = box.height - (Math.min(p[direction], box.max) / box.max) * box.height;
    const command = !penDown || p.breakBefore ? "M" : "L";
    parts.push(`${command}${round(x)} ${round(y)}`);
    penDown = true;
  }
  return parts.join(" ");
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Everything the graph view needs for one tunnel. */
export function graph(samples: Sample[], box: Omit<GraphBox, "max">) {
  const points = rates(samples).filter((p) => p.unixMs >= box.nowMs - box.spanMs);
  const peak = points.reduce((m, p) => Math.max(m, p.rx, p.tx), 0);
  const full: GraphBox = { ...box, max: niceMax(peak) };
  const latest = points.length > 0 ? points[points.length - 1] : null;
  return {
    max: full.max,
    rxPath: linePath(points, full, "rx"),
    txPath: linePath(points, full, "tx"),
    latest,
  };
}
