import { describe, expect, it } from "vitest";
import { formatAgo, formatBytes, formatDuration, formatRate } from "./format";

describe("format", () => {
  it("writes bytes with decimal units and sensible precision", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1234)).toBe("1.23 kB");
    expect(formatBytes(12_345)).toBe("12.3 kB");
    expect(formatBytes(123_456_789)).toBe("123 MB");
    expect(formatBytes(-1)).toBe("—");
    expect(formatRate(2_500_000)).toBe("2.50 MB/s");
  });

  it("writes durations and ages", () => {
    expect(formatDuration(5)).toBe("5 s");
    expect(formatDuration(125)).toBe("2 min");
    expect(formatDuration(3600 + 300)).toBe("1 h 5 min");
    expect(formatDuration(7200)).toBe("2 h");
    expect(formatDuration(3 * 86400 + 5)).toBe("3 d");
    expect(formatAgo(null, 100)).toBe("never");
    expect(formatAgo(88, 100)).toBe("12 s ago");
    expect(formatAgo(110, 100)).toBe("0 s ago");
  });
});
