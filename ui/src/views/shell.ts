// views/shell.ts — everything around the main pane: the tunnel list, the helper screen, the
// keyring banner, dialogs, the import report, toasts, and the logs and settings views.

import { h } from "../dom";
import type { ImportOutcome, LogLineView, Snapshot, TrayStatus, TunnelView } from "../generated/bindings";
import { formatClock } from "../logic/format";
import { KEY_FILE_WARNING, helperHelp, secretsWarning, sortTunnels, stateLabel, tunnelTone } from "../logic/state";

export function sidebar(
  snapshot: Snapshot,
  selected: string | null,
  current: string,
  actions: {
    select(name: string): void;
    importDialog(): void;
    create(): void;
    logs(): void;
    settings(): void;
  },
): HTMLElement {
  return h(
    "aside",
    { class: "sidebar" },
    h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "Warren"),
    h(
      "ul",
      { class: "tunnel-list", "data-test": "tunnel-list" },
      sortTunnels(snapshot.tunnels).map((t: TunnelView) =>
        h(
          "li",
          {
            "data-key": t.name,
            class: t.name === selected && current === "tunnel" ? "selected" : null,
            onclick: () => actions.select(t.name),
          },
          h("span", { class: `dot tone-${tunnelTone(t)}`, "aria-hidden": "true" }),
          h("span", { class: "name" }, t.name),
          h("span", { class: "state" }, t.pending ? "…" : stateLabel(t.state)),
        ),
      ),
    ),
    h(
      "div",
      { class: "sidebar-actions" },
      h("button", { onclick: () => actions.importDialog(), "data-test": "import" }, "Import…"),
      h("button", { onclick: () => actions.create(), "data-test": "new" }, "New tunnel"),
    ),
    h(
      "nav",
      null,
      h("button", { class: current === "logs" ? "link selected" : "link", onclick: () => actions.logs() }, "Logs"),
      h("button", { class: current === "settings" ? "link selected" : "link", onclick: () => actions.settings() }, "Settings"),
      h("span", { class: `helper-dot tone-${snapshot.helper.kind === "connected" ? "ok" : "unknown"}`, title: snapshot.helper.kind }),
    ),
  );
}

/** The screen that replaces the tunnel view while the helper is not usable. */
export function helperScreen(snapshot: Snapshot, actions: { retry(): void; copy(text: string): void }): HTMLElement | null {
  const help = helperHelp(snapshot.helper);
  if (!help) return null;
  return h(
    "section",
    { class: "helper-screen", "data-key": "helper-screen", "data-test": "helper-screen" },
    h("h1", null, help.title),
    h("p", null, help.text),
    help.commands.map((c) =>
      h("p", { class: "command" }, h("code", null, c), " ", h("button", { class: "small", onclick: () => actions.copy(c) }, "Copy")),
    ),
    h(
      "p",
      null,
      h("button", { class: "primary", onclick: () => actions.retry(), "data-test": "retry" }, "Try again"),
      h("span", { class: "hint" }, " Warren also checks again every few seconds."),
    ),
  );
}

export function secretsBanner(snapshot: Snapshot, actions: { retry(): void; fallBack(): void }): HTMLElement | null {
  const warning = secretsWarning(snapshot.secrets);
  if (!warning) return null;
  return h(
    "div",
    { class: `banner ${warning.canFallBack ? "error" : "warn"}`, "data-test": "secrets-banner" },
    h("strong", null, warning.title),
    h("p", null, warning.text),
    h(
      "p",
      null,
      h("button", { onclick: () => actions.retry() }, "Check the keyring again"),
      warning.canFallBack ? [" ", h("button", { class: "danger-quiet", onclick: () => actions.fallBack() }, "Keep keys in files…")] : null,
    ),
  );
}

/**
 * Where there is no tray icon: why, and what that changes (closing the window quits). A quiet
 * note, not a warning: everything else works.
 */
export function trayNotice(tray: TrayStatus, actions: { dismiss(): void }): HTMLElement | null {
  if (tray.kind === "available") return null;
  return h(
    "div",
    { class: "banner info", "data-test": "tray-notice", role: "status" },
    h("strong", null, "No tray icon. "),
    tray.reason,
    " Warren works from this window; closing it quits Warren.",
    " ",
    h("button", { class: "small", onclick: () => actions.dismiss(), "data-test": "tray-notice-dismiss" }, "OK"),
  );
}

export type Dialog =
  | { kind: "create"; name: string; problem: string | null }
  | { kind: "rename"; from: string; name: string; problem: string | null }
  | { kind: "delete"; name: string }
  | { kind: "key_files" }
  | { kind: "imported"; outcomes: ImportOutcome[] };

export interface DialogActions {
  setName(name: string): void;
  confirm(): void;
  close(): void;
}

export function dialogView(dialog: Dialog, actions: DialogActions): HTMLElement {
  const body = ((): [string, HTMLElement | HTMLElement[], string | null, boolean] => {
    switch (dialog.kind) {
      case "create":
      case "rename":
        return [
          dialog.kind === "create" ? "New tunnel" : `Rename ${dialog.from}`,
          [
            h(
              "label",
              null,
              "Name ",
              h("input", {
                value: dialog.name,
                autofocus: true,
                maxlength: 15,
                "data-test": "name-input",
                oninput: (e: Event) => actions.setName((e.target as HTMLInputElement).value),
                onkeydown: (e: KeyboardEvent) => e.key === "Enter" && dialog.problem === null && actions.confirm(),
              }),
            ),
            dialog.problem ? h("p", { class: "diagnostic error", "data-test": "name-problem" }, dialog.problem) : h("p", { class: "hint" }, dialog.kind === "create" ? "A new key pair is generated; the private key goes to your keyring." : "Up to 15 letters, digits and _ = + . -"),
          ],
          dialog.kind === "create" ? "Create" : "Rename",
          dialog.problem === null && dialog.name.length > 0,
        ];
      case "delete":
        return [
          `Delete ${dialog.name}?`,
          h("p", null, `The tunnel and its private key are deleted from this computer. This cannot be undone; export it first if you may need it again.`),
          "Delete",
          true,
        ];
      case "key_files":
        return ["Keep private keys in files?", h("p", { class: "warning" }, KEY_FILE_WARNING), "Keep keys in files", true];
      case "imported":
        return [
          "Import",
          h(
            "ul",
            { class: "import-report", "data-test": "import-report" },
            dialog.outcomes.map((o) =>
              h("li", { class: o.error ? "error" : "ok" }, o.imported ? `Imported ${o.imported} (${o.file})` : o.error?.message ?? o.file),
            ),
          ),
          null,
          true,
        ];
    }
  })();
  const [title, content, confirm, enabled] = body;
  const danger = dialog.kind === "delete" || dialog.kind === "key_files";
  return h(
    "div",
    { class: "overlay", "data-test": "dialog" },
    h(
      "div",
      { class: "dialog", role: "dialog", "aria-modal": "true" },
      h("h2", null, title),
      content,
      h(
        "footer",
        null,
        confirm
          ? h("button", { class: danger ? "danger" : "primary", disabled: !enabled, onclick: () => actions.confirm(), "data-test": "confirm" }, confirm)
          : null,
        " ",
        h("button", { onclick: () => actions.close(), "data-test": "close" }, confirm ? "Cancel" : "Close"),
      ),
    ),
  );
}

export function logsView(
  lines: LogLineView[],
  filter: { level: string; text: string },
  helperConnected: boolean,
  actions: { setLevel(level: string): void; setText(text: string): void },
): HTMLElement {
  const order = ["error", "warn", "info", "debug", "trace"];
  const max = order.indexOf(filter.level);
  const needle = filter.text.toLowerCase();
  const shown = lines.filter(
    (l) =>
      order.indexOf(l.level) <= max &&
      (needle === "" || l.message.toLowerCase().includes(needle) || l.target.toLowerCase().includes(needle)),
  );
  return h(
    "section",
    { class: "logs", "data-key": "logs" },
    h("header", null, h("h1", null, "Helper log")),
    h(
      "div",
      { class: "log-filters" },
      h(
        "select",
        { onchange: (e: Event) => actions.setLevel((e.target as HTMLSelectElement).value) },
        order.map((l) => h("option", { value: l, selected: l === filter.level }, `${l} and above`)),
      ),
      h("input", {
        type: "search",
        placeholder: "Filter",
        value: filter.text,
        oninput: (e: Event) => actions.setText((e.target as HTMLInputElement).value),
      }),
    ),
    helperConnected ? null : h("p", { class: "hint" }, "The helper is not reachable: these are the lines received before it went away."),
    h(
      "ol",
      { class: "log-lines", "data-test": "log-lines" },
      shown.slice(-500).map((l) =>
        h("li", { class: `level-${l.level}` }, h("time", null, formatClock(l.unix_ms)), h("span", { class: "level" }, l.level), h("span", { class: "target" }, l.target), h("span", { class: "message" }, l.message)),
      ),
    ),
    shown.length === 0 ? h("p", { class: "hint" }, "No log lines.") : null,
  );
}

export function settingsView(
  snapshot: Snapshot,
  actions: { setStartAtLogin(v: boolean): void; setConnectOnLaunch(v: boolean): void; retryKeyring(): void; fallBack(): void },
  hasTray = true,
): HTMLElement {
  const s = snapshot.settings;
  const secrets = snapshot.secrets;
  return h(
    "section",
    { class: "settings", "data-key": "settings" },
    h("h1", null, "Settings"),
    h(
      "label",
      null,
      h("input", { type: "checkbox", checked: s.start_at_login, onchange: (e: Event) => actions.setStartAtLogin((e.target as HTMLInputElement).checked) }),
      // Without a tray, a start at login opens the window (src-tauri/src/app.rs).
      hasTray ? " Start Warren in the tray when I log in" : " Start Warren when I log in",
    ),
    h(
      "label",
      null,
      h("input", { type: "checkbox", checked: s.connect_on_launch, onchange: (e: Event) => actions.setConnectOnLaunch((e.target as HTMLInputElement).checked) }),
      ` Connect the last-used tunnel${snapshot.last_used ? ` (${snapshot.last_used})` : ""} when Warren starts`,
    ),
    h("h2", null, "Private keys"),
    h(
      "p",
      null,
      secrets.kind === "keyring"
        ? `Kept in ${secrets.backend}.`
        : secrets.kind === "file"
          ? `Kept unencrypted in files in ${secrets.path}.`
          : `No keyring is available: ${secrets.reason}.`,
    ),
    h(
      "p",
      null,
      secrets.kind !== "keyring" ? h("button", { onclick: () => actions.retryKeyring() }, "Use the keyring (check again)") : null,
      secrets.kind === "unavailable" ? [" ", h("button", { class: "danger-quiet", onclick: () => actions.fallBack() }, "Keep keys in files…")] : null,
    ),
    h("h2", null, "Helper"),
    h("p", null, snapshot.helper.kind === "connected" ? `Connected to warren-helper ${snapshot.helper.version}.` : "Not connected."),
  );
}

export interface Toast {
  id: number;
  text: string;
  tone: "ok" | "error";
}

export function toastsView(toasts: Toast[]): HTMLElement {
  return h(
    "div",
    { class: "toasts", "aria-live": "polite" },
    toasts.map((t) => h("div", { class: `toast ${t.tone}`, "data-key": `toast-${t.id}` }, t.text)),
  );
}
