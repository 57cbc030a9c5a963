// app.ts — the app: UI state (which view, dialogs, toasts), the actions the views call, and the
// render loop. The tunnels' states are never stored here: every render reads them from the
// latest snapshot the backend pushed (event `snapshot`), which mirrors the helper.

import { Api, errorMessage } from "./api";
import type { Backend } from "./api";
import { h, morph } from "./dom";
import type { ImportOutcome, KillSwitchView, LogLineView, Snapshot, TrayStatus } from "./generated/bindings";
import { Validator } from "./logic/validation";
import { editorView } from "./views/editor";
import type { EditorState } from "./views/editor";
import { dialogView, helperScreen, logsView, secretsBanner, settingsView, sidebar, toastsView, trayNotice } from "./views/shell";
import type { Dialog, Toast } from "./views/shell";
import { demoCard } from "./logic/demo";
import { demoCardView, emptyView, tunnelView } from "./views/tunnel";

type View = { kind: "tunnel"; name: string | null } | EditorState | { kind: "logs" } | { kind: "settings" };

const TOAST_MS = 4000;
const VALIDATE_DELAY_MS = 150;

export class App {
  readonly api: Api;
  snapshot: Snapshot | null = null;
  view: View = { kind: "tunnel", name: null };
  dialog: Dialog | null = null;
  toasts: Toast[] = [];
  logs: LogLineView[] = [];
  /** Whether there is a tray icon; the notice about its absence until dismissed. */
  tray: TrayStatus = { kind: "available" };
  trayNoticeDismissed = false;
  logFilter = { level: "info", text: "" };
  private nextToast = 1;
  private validator = new Validator();
  private validateTimer: ReturnType<typeof setTimeout> | null = null;
  private nameTicket = 0;
  private root: HTMLElement;
  private live: Node | null = null;
  /** The clock; tests replace it. */
  now: () => number = () => Date.now();

  constructor(backend: Backend, root: HTMLElement) {
    this.api = new Api(backend);
    this.root = root;
  }

  /** Loads the first snapshot and subscribes to updates. */
  async start(): Promise<void> {
    await this.api.backend.listen<Snapshot>("snapshot", (s) => this.onSnapshot(s));
    await this.api.backend.listen<LogLineView>("log", (line) => {
      this.logs.push(line);
      if (this.logs.length > 2000) this.logs.splice(0, this.logs.length - 2000);
      if (this.view.kind === "logs") this.render();
    });
    await this.api.backend.onFileDrop((paths) => void this.importPaths(paths));
    // Files given on the command line (also a second launch's): the backend imported them.
    await this.api.backend.listen<ImportOutcome[]>("imported", (outcomes) => this.reportImport(outcomes));
    this.tray = (await this.api.trayStatus().catch(() => null)) ?? { kind: "available" };
    this.onSnapshot(await this.api.snapshot());
    this.logs = await this.api.logs().catch(() => []);
  }

  onSnapshot(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    if (this.view.kind === "tunnel") {
      const names = snapshot.tunnels.map((t) => t.name);
      if (this.view.name === null || !names.includes(this.view.name)) {
        this.view = { kind: "tunnel", name: snapshot.last_used && names.includes(snapshot.last_used) ? snapshot.last_used : names[0] ?? null };
      }
    }
    this.render();
  }

  // --- feedback ----------------------------------------------------------------------------

  toast(text: string, tone: "ok" | "error" = "ok"): void {
    const id = this.nextToast++;
    this.toasts.push({ id, text, tone });
    this.render();
    setTimeout(() => {
      this.toasts = this.toasts.filter((t) => t.id !== id);
      this.render();
    }, TOAST_MS);
  }

  /** Runs a backend call; a failure becomes an error toast. */
  async attempt<T>(work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (e) {
      this.toast(errorMessage(e), "error");
      return undefined;
    }
  }

  async copy(text: string): Promise<void> {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    this.toast("Copied to the clipboard.");
  }

  // --- tunnels -----------------------------------------------------------------------------

  select(name: string): void {
    if (!this.leaveEditor()) return;
    this.view = { kind: "tunnel", name };
    this.render();
  }

  async importPaths(paths: string[]): Promise<void> {
    const conf = paths.filter((p) => p.toLowerCase().endsWith(".conf"));
    if (conf.length === 0) {
      this.toast("Only WireGuard .conf files can be imported.", "error");
      return;
    }
    const outcomes = await this.attempt(() => this.api.importFiles(conf));
    if (outcomes) this.reportImport(outcomes);
  }

  async importDialog(): Promise<void> {
    const outcomes = await this.attempt(() => this.api.importDialog());
    if (outcomes && outcomes.length > 0) this.reportImport(outcomes);
  }

  reportImport(outcomes: ImportOutcome[]): void {
    const imported = outcomes.filter((o) => o.imported);
    if (imported.length === outcomes.length) {
      this.toast(imported.length === 1 ? `Imported ${imported[0].imported}.` : `Imported ${imported.length} tunnels.`);
      if (this.view.kind === "tunnel") this.view = { kind: "tunnel", name: imported[imported.length - 1].imported };
    } else {
      this.dialog = { kind: "imported", outcomes };
    }
    this.render();
  }

  /**
   * The demo card's one button: import the offered demo through the ordinary import, select it,
   * and connect it at once — the user asked to see a working tunnel, and the connection view then
   * shows it happen (handshake, traffic) with its Disconnect button.
   */
  async acceptDemo(): Promise<void> {
    const name = await this.attempt(() => this.api.acceptDemoOffer());
    if (!name) return;
    this.view = { kind: "tunnel", name };
    this.toast(`Imported ${name}. Connecting…`);
    await this.attempt(() => this.api.connect(name));
  }

  private setKillSwitch(name: string, value: KillSwitchView): void {
    const tunnel = this.snapshot?.tunnels.find((t) => t.name === name);
    if (tunnel) void this.attempt(() => this.api.setOptions(name, { ...tunnel.options, kill_switch: value }));
  }

  private setAllowLan(name: string, value: boolean): void {
    const tunnel = this.snapshot?.tunnels.find((t) => t.name === name);
    if (tunnel) void this.attempt(() => this.api.setOptions(name, { ...tunnel.options, allow_lan: value }));
  }

  async exportConf(name: string): Promise<void> {
    const path = await this.attempt(() => this.api.exportDialog(name));
    if (path) this.toast(`Exported to ${path}. It contains the private key: keep it safe.`);
  }

  // --- the editor --------------------------------------------------------------------------

  async edit(name: string): Promise<void> {
    const text = await this.attempt(() => this.api.tunnelText(name));
    if (!text) return;
    this.view = { kind: "editor", name, text: text.text, publicKey: text.public_key, diagnostic: null, checking: false, saveError: null, dirty: false };
    this.render();
  }

  editorInput(text: string): void {
    if (this.view.kind !== "editor") return;
    this.view = { ...this.view, text, dirty: true, checking: true, saveError: null };
    const ticket = this.validator.next();
    if (this.validateTimer !== null) clearTimeout(this.validateTimer);
    this.validateTimer = setTimeout(() => void this.validate(ticket, text), VALIDATE_DELAY_MS);
    this.render();
  }

  async validate(ticket: number, text: string): Promise<void> {
    const diagnostic = await this.api.validateText(text).catch((e) => ({ line: null, message: errorMessage(e) }));
    if (!this.validator.accept(ticket) || this.view.kind !== "editor") return;
    this.view = { ...this.view, diagnostic, checking: false };
    this.render();
  }

  async saveEditor(): Promise<void> {
    if (this.view.kind !== "editor") return;
    const { name, text } = this.view;
    try {
      const saved = await this.api.saveText(name, text);
      this.toast(`Saved ${name}.`);
      this.view = { kind: "tunnel", name: saved.name };
    } catch (e) {
      if (this.view.kind === "editor") this.view = { ...this.view, saveError: errorMessage(e) };
    }
    this.render();
  }

  /** Leaves the editor if there is nothing to lose or the user agrees. */
  leaveEditor(): boolean {
    if (this.view.kind !== "editor" || !this.view.dirty) return true;
    return window.confirm(`Discard your changes to ${this.view.name}?`);
  }

  // --- dialogs -----------------------------------------------------------------------------

  openDialog(dialog: Dialog): void {
    this.dialog = dialog;
    this.render();
  }

  async dialogName(name: string): Promise<void> {
    const dialog = this.dialog;
    if (!dialog || (dialog.kind !== "create" && dialog.kind !== "rename")) return;
    this.dialog = { ...dialog, name };
    this.render();
    const ticket = ++this.nameTicket;
    const problem = name === "" ? null : await this.api.validateName(name).catch((e) => errorMessage(e));
    const exists = this.snapshot?.tunnels.some((t) => t.name === name) ? `A tunnel named “${name}” already exists.` : null;
    if (ticket !== this.nameTicket || !this.dialog || (this.dialog.kind !== "create" && this.dialog.kind !== "rename")) return;
    this.dialog = { ...this.dialog, problem: problem ?? exists };
    this.render();
  }

  async confirmDialog(): Promise<void> {
    const dialog = this.dialog;
    if (!dialog) return;
    switch (dialog.kind) {
      case "create": {
        const created = await this.attempt(() => this.api.createTunnel(dialog.name));
        if (!created) return;
        this.dialog = null;
        this.view = { kind: "editor", name: created.name, text: created.text, publicKey: created.public_key, diagnostic: null, checking: false, saveError: null, dirty: false };
        this.toast(`Created ${created.name}. Add its address and peer, then save.`);
        break;
      }
      case "rename": {
        const done = await this.attempt(async () => (await this.api.renameTunnel(dialog.from, dialog.name), true));
        if (!done) return;
        this.dialog = null;
        this.view = { kind: "tunnel", name: dialog.name };
        break;
      }
      case "delete": {
        const done = await this.attempt(async () => (await this.api.deleteTunnel(dialog.name), true));
        this.dialog = null;
        if (done) {
          this.view = { kind: "tunnel", name: null };
          this.toast(`Deleted ${dialog.name}.`);
        }
        break;
      }
      case "key_files":
        this.dialog = null;
        await this.attempt(() => this.api.useKeyFiles());
        break;
      case "imported":
        this.dialog = null;
        break;
    }
    this.render();
  }

  // --- rendering ---------------------------------------------------------------------------

  build(): HTMLElement {
    const snapshot = this.snapshot;
    if (!snapshot) return h("div", { class: "app loading" }, h("p", null, "Starting…"));
    const copy = (t: string) => void this.copy(t);
    const selected = this.view.kind === "tunnel" ? this.view.name : this.view.kind === "editor" ? this.view.name : null;
    const main = (() => {
      const view = this.view;
      switch (view.kind) {
        case "editor":
          return editorView(view, {
            input: (t) => this.editorInput(t),
            save: () => void this.saveEditor(),
            cancel: () => {
              if (this.leaveEditor()) {
                this.view = { kind: "tunnel", name: view.name };
                this.render();
              }
            },
            copy,
          });
        case "logs":
          return logsView(this.logs, this.logFilter, snapshot.helper.kind === "connected", {
            setLevel: (level) => {
              this.logFilter = { ...this.logFilter, level };
              this.render();
            },
            setText: (text) => {
              this.logFilter = { ...this.logFilter, text };
              this.render();
            },
          });
        case "settings":
          return settingsView(snapshot, {
            setStartAtLogin: (v) => void this.attempt(() => this.api.setStartAtLogin(v)),
            setConnectOnLaunch: (v) => void this.attempt(() => this.api.setConnectOnLaunch(v)),
            retryKeyring: () => void this.attempt(() => this.api.retryKeyring()),
            fallBack: () => this.openDialog({ kind: "key_files" }),
          }, this.tray.kind === "available");
        case "tunnel": {
          const screen = helperScreen(snapshot, { retry: () => void this.attempt(() => this.api.retryHelper()), copy });
          const tunnel = snapshot.tunnels.find((t) => t.name === view.name);
          if (!tunnel) {
            const card = demoCard(snapshot);
            const demo = card ? demoCardView(card, { accept: () => void this.acceptDemo() }) : null;
            return screen ?? emptyView({ importDialog: () => void this.importDialog(), create: () => this.openDialog({ kind: "create", name: "", problem: null }) }, demo);
          }
          const pane = tunnelView(tunnel, snapshot.helper, this.now(), {
            connect: (n) => void this.attempt(() => this.api.connect(n)),
            disconnect: (n) => void this.attempt(() => this.api.disconnect(n)),
            setKillSwitch: (n, v) => this.setKillSwitch(n, v),
            setAllowLan: (n, v) => this.setAllowLan(n, v),
            edit: (n) => void this.edit(n),
            rename: (n) => this.openDialog({ kind: "rename", from: n, name: n, problem: null }),
            exportConf: (n) => void this.exportConf(n),
            remove: (n) => this.openDialog({ kind: "delete", name: n }),
            copy,
          });
          return h("div", { class: "stack" }, screen, pane);
        }
      }
    })();
    return h(
      "div",
      { class: "app" },
      sidebar(snapshot, selected, this.view.kind, {
        select: (n) => this.select(n),
        importDialog: () => void this.importDialog(),
        create: () => this.openDialog({ kind: "create", name: "", problem: null }),
        logs: () => {
          if (!this.leaveEditor()) return;
          this.view = { kind: "logs" };
          this.render();
        },
        settings: () => {
          if (!this.leaveEditor()) return;
          this.view = { kind: "settings" };
          this.render();
        },
      }),
      h(
        "main",
        null,
        secretsBanner(snapshot, { retry: () => void this.attempt(() => this.api.retryKeyring()), fallBack: () => this.openDialog({ kind: "key_files" }) }),
        this.trayNoticeDismissed
          ? null
          : trayNotice(this.tray, {
              dismiss: () => {
                this.trayNoticeDismissed = true;
                this.render();
              },
            }),
        main,
      ),
      this.dialog
        ? dialogView(this.dialog, {
            setName: (n) => void this.dialogName(n),
            confirm: () => void this.confirmDialog(),
            close: () => {
              this.dialog = null;
              this.render();
            },
          })
        : null,
      toastsView(this.toasts),
    );
  }

  render(): void {
    const fresh = this.build();
    if (this.live === null) {
      this.root.replaceChildren(fresh);
      this.live = fresh;
    } else {
      this.live = morph(this.live, fresh);
    }
  }
}

/** Boots the app in `root` with `backend`; re-renders every second so ages stay current. */
export async function boot(backend: Backend, root: HTMLElement): Promise<App> {
  const app = new App(backend, root);
  app.render();
  await app.start();
  setInterval(() => app.render(), 1000);
  return app;
}
