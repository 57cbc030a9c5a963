// api.ts — the backend's commands and events, typed with the generated bindings. Every call
// goes through one `Backend` object so tests can replace it (see app.test.ts); the real one uses
// Tauri's `invoke` and `listen`.

import type {
  Diagnostic,
  ImportOutcome,
  LogLineView,
  OptionsView,
  Snapshot,
  TrayStatus,
  TunnelText,
  UiError,
} from "./generated/bindings";

export interface Backend {
  invoke<T>(command: string, args?: Record<string, unknown>): Promise<T>;
  listen<T>(event: string, handler: (payload: T) => void): Promise<() => void>;
  /** Paths of files dropped on the window. */
  onFileDrop(handler: (paths: string[]) => void): Promise<() => void>;
}

/** The Tauri backend. Imported lazily so tests never load Tauri's runtime. */
export async function tauriBackend(): Promise<Backend> {
  const core = await import("@tauri-apps/api/core");
  const event = await import("@tauri-apps/api/event");
  const webview = await import("@tauri-apps/api/webview");
  return {
    invoke: (command, args) => core.invoke(command, args),
    listen: (name, handler) => event.listen(name, (e) => handler(e.payload as never)),
    onFileDrop: (handler) =>
      webview.getCurrentWebview().onDragDropEvent((e) => {
        if (e.payload.type === "drop") handler(e.payload.paths);
      }),
  };
}

/** True if `e` is the backend's error shape. */
export function isUiError(e: unknown): e is UiError {
  return typeof e === "object" && e !== null && "kind" in e && "message" in e;
}

/** A sentence for any thrown value. */
export function errorMessage(e: unknown): string {
  if (isUiError(e)) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The commands, typed. */
export class Api {
  constructor(readonly backend: Backend) {}

  snapshot = () => this.backend.invoke<Snapshot>("snapshot");
  logs = () => this.backend.invoke<LogLineView[]>("logs");
  connect = (name: string) => this.backend.invoke<void>("connect", { name });
  disconnect = (name: string) => this.backend.invoke<void>("disconnect", { name });
  setOptions = (name: string, options: OptionsView) =>
    this.backend.invoke<void>("set_options", { name, options });
  retryHelper = () => this.backend.invoke<void>("retry_helper");
  importFiles = (paths: string[]) => this.backend.invoke<ImportOutcome[]>("import_files", { paths });
  importDialog = () => this.backend.invoke<ImportOutcome[]>("import_dialog");
  createTunnel = (name: string) => this.backend.invoke<TunnelText>("create_tunnel", { name });
  tunnelText = (name: string) => this.backend.invoke<TunnelText>("tunnel_text", { name });
  validateText = (text: string) => this.backend.invoke<Diagnostic | null>("validate_text", { text });
  validateName = (name: string) => this.backend.invoke<string | null>("validate_name", { name });
  saveText = (name: string, text: string) => this.backend.invoke<TunnelText>("save_text", { name, text });
  renameTunnel = (from: string, to: string) => this.backend.invoke<void>("rename_tunnel", { from, to });
  deleteTunnel = (name: string) => this.backend.invoke<void>("delete_tunnel", { name });
  exportDialog = (name: string) => this.backend.invoke<string | null>("export_dialog", { name });
  setConnectOnLaunch = (enabled: boolean) =>
    this.backend.invoke<void>("set_connect_on_launch", { enabled });
  setStartAtLogin = (enabled: boolean) => this.backend.invoke<void>("set_start_at_login", { enabled });
  retryKeyring = () => this.backend.invoke<void>("retry_keyring");
  useKeyFiles = () => this.backend.invoke<void>("use_key_files");
  /** Imports the local demo on offer; the new tunnel's name. */
  acceptDemoOffer = () => this.backend.invoke<string>("accept_demo_offer");
  /** Whether there is a tray icon (fixed at start). */
  trayStatus = () => this.backend.invoke<TrayStatus>("tray_status");
}
