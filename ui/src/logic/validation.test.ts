import { describe, expect, it } from "vitest";
import { Validator, diagnosticLabel, gutter, lineRange } from "./validation";

describe("validation display", () => {
  const text = "[Interface]\nAddress = 198.18.100.2/24\n\n[Peer]\nAllowedIPs = 198.18.0.0/33";

  it("marks the faulty line in the gutter", () => {
    const rows = gutter(text, { line: 5, message: "AllowedIPs: bad" });
    expect(rows).toHaveLength(5);
    expect(rows.filter((r) => r.error).map((r) => r.number)).toEqual([5]);
    expect(gutter(text, null).some((r) => r.error)).toBe(false);
    expect(gutter(text, { line: null, message: "no [Interface]" }).some((r) => r.error)).toBe(false);
  });

  it("labels messages with their line", () => {
    expect(diagnosticLabel({ line: 5, message: "AllowedIPs: bad" })).toBe("Line 5: AllowedIPs: bad");
    expect(diagnosticLabel({ line: null, message: "no [Interface] section" })).toBe("no [Interface] section");
  });

  it("finds a line's characters to select it", () => {
    expect(lineRange(text, 1)).toEqual([0, 11]);
    const [start, end] = lineRange(text, 5);
    expect(text.slice(start, end)).toBe("AllowedIPs = 198.18.0.0/33");
    expect(lineRange(text, 3)).toEqual([38, 38]);
    expect(lineRange(text, 99)).toEqual(lineRange(text, 5));
  });

  it("ignores answers for text that has changed since", () => {
    const v = new Validator();
    const first = v.next();
    const second = v.next();
    expect(v.accept(first)).toBe(false);
    expect(v.accept(second)).toBe(true);
  });
});
