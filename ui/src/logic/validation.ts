// validation.ts — how the editor shows the helper parser's verdict on the text being edited.
// The verdict itself comes from the backend (`validate_text`, the same parser the helper runs);
// this module only places it: which gutter line is marked, what the message says, where the
// caret goes when the message is clicked, and which answer is stale. Pure; see validation.test.ts.

import type { Diagnostic } from "../generated/bindings";

/** One gutter row. */
export interface GutterLine {
  number: number;
  error: boolean;
}

/** The line numbers beside `text`, with the faulty one marked. */
export function gutter(text: string, diagnostic: Diagnostic | null): GutterLine[] {
  const count = text.split("\n").length;
  const bad = diagnostic?.line ?? null;
  return Array.from({ length: count }, (_, i) => ({ number: i + 1, error: bad === i + 1 }));
}

/** "Line 7: AllowedIPs: …", or the bare message for whole-file faults. */
export function diagnosticLabel(diagnostic: Diagnostic): string {
  return diagnostic.line === null ? diagnostic.message : `Line ${diagnostic.line}: ${diagnostic.message}`;
}

/** The [start, end) character offsets of 1-based `line` in `text`, to select it. */
export function lineRange(text: string, line: number): [number, number] {
  const lines = text.split("\n");
  const index = Math.min(Math.max(line, 1), lines.length) - 1;
  let start = 0;
  for (let i = 0; i < index; i++) start += lines[i].length + 1;
  return [start, start + lines[index].length];
}

/**
 * Orders validation answers: each edit gets a number, and an answer is shown only if it belongs
 * to the newest edit, so a slow answer for old text never overwrites a newer one.
 */
export class Validator {
  private latest = 0;

  /** Call on every edit; pass the result to `accept` with the answer. */
  next(): number {
    this.latest += 1;
    return this.latest;
  }

  /** True if the answer for edit `ticket` is still current. */
  accept(ticket: number): boolean {
    return ticket === this.latest;
  }
}
