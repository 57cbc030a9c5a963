// views/editor.ts — editing a tunnel's configuration text with inline validation from the
// helper's parser: the faulty line is marked in the gutter and the message under the text says
// what is wrong; clicking the message selects the line.

import { h } from "../dom";
import type { Diagnostic } from "../generated/bindings";
import { diagnosticLabel, gutter, lineRange } from "../logic/validation";

export interface EditorState {
  kind: "editor";
  name: string;
  text: string;
  publicKey: string;
  diagnostic: Diagnostic | null;
  /** True until the first validation answer for the current text arrives. */
  checking: boolean;
  saveError: string | null;
  dirty: boolean;
}

export interface EditorActions {
  input(text: string): void;
  save(): void;
  cancel(): void;
  copy(text: string): void;
}

export function editorView(state: EditorState, actions: EditorActions): HTMLElement {
  const rows = gutter(state.text, state.diagnostic);
  const textarea = h("textarea", {
    class: "code-text",
    spellcheck: "false",
    autocomplete: "off",
    wrap: "off",
    value: state.text,
    "data-test": "editor-text",
    "aria-invalid": state.diagnostic ? "true" : "false",
    oninput: (e: Event) => actions.input((e.target as HTMLTextAreaElement).value),
    onscroll: (e: Event) => {
      const area = e.target as HTMLTextAreaElement;
      const gutterEl = area.parentElement?.querySelector(".gutter");
      if (gutterEl) gutterEl.scrollTop = area.scrollTop;
    },
  });
  const selectLine = (line: number) => {
    const area = document.querySelector<HTMLTextAreaElement>("textarea.code-text");
    if (!area) return;
    const [start, end] = lineRange(area.value, line);
    area.focus();
    area.setSelectionRange(start, end);
  };
  const d = state.diagnostic;
  return h(
    "section",
    { class: "editor", "data-key": `editor-${state.name}` },
    h("header", null, h("h1", null, `Edit ${state.name}`)),
    h(
      "p",
      { class: "public-key" },
      "Public key: ",
      h("code", { "data-test": "editor-public-key" }, state.publicKey),
      " ",
      h("button", { class: "small", onclick: () => actions.copy(state.publicKey) }, "Copy"),
    ),
    h(
      "p",
      { class: "hint" },
      "The private key stays in your keyring and is not shown here. To replace it, add a line “PrivateKey = …” under [Interface].",
    ),
    h(
      "div",
      { class: "code" },
      h(
        "div",
        { class: "gutter", "aria-hidden": "true" },
        rows.map((r) => h("div", { class: r.error ? "error" : null, "data-test": r.error ? "gutter-error" : null }, String(r.number))),
      ),
      textarea,
    ),
    d
      ? h(
          "p",
          {
            class: "diagnostic error",
            role: "alert",
            "data-test": "diagnostic",
            onclick: () => d.line !== null && selectLine(d.line),
          },
          diagnosticLabel(d),
        )
      : h("p", { class: "diagnostic ok", "data-test": "diagnostic-ok" }, state.checking ? "Checking…" : "The configuration is valid."),
    state.saveError ? h("p", { class: "request-error" }, state.saveError) : null,
    h(
      "footer",
      null,
      h(
        "button",
        { class: "primary", disabled: d !== null || state.checking || !state.dirty, onclick: () => actions.save(), "data-test": "save" },
        "Save",
      ),
      " ",
      h("button", { onclick: () => actions.cancel() }, state.dirty ? "Discard changes" : "Close"),
    ),
  );
}
