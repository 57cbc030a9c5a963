// The app against a fake backend in jsdom: what a person sees for given snapshots, and which
// commands their clicks send. No Tauri involved.
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { Backend } from "./api";
import { App } from "./app";
import type { Snapshot, TunnelView } from "./generated/bindings";

class FakeBackend implements Backend {
  calls: Array<[string, Record<string, unknown> | undefined]> = [];
  handlers = new Map<string, (payload: unknown) => void>();
  answers: Record<string, (args?: Record<string, unknown>) => unknown> = {};
  constructor(public snapshot: Snapshot) {}
  async invoke<T>(command: string, args?: Record<string, unknown>): Promise<T> {
    this.calls.push([command, args]);
    if (command === "snapshot") return this.snapshot as T;
    if (command === "logs") return [] as T;
    const answer = this.answers[command];
    if (answer) return answer(args) as T;
    return undefined as T;
  }
  async listen<T>(event: string, handler: (payload: T) => void) {
    this.handlers.set(event, handler as (payload: unknown) => void);
    return () => undefined;
  }
  async onFileDrop(handler: (paths: string[]) => void) {
    this.handlers.set("drop", handler as (payload: unknown) => void);
    return () => undefined;
  }
  emit(event: string, payload: unknown) {
    this.handlers.get(event)!(payload);
  }
  commands() {
    return this.calls.map(([c]) => c).filter((c) => c !== "snapshot" && c !== "logs" && c !== "tray_status");
  }
}

function tunnel(overrides: Partial<TunnelView> = {}): TunnelView {
  return {
    name: "home",
    kind: "user",
    stored: true,
    state: { kind: "disconnected" },
    health: null,
    peers: [],
    options: { kill_switch: "auto", allow_lan: false },
    public_key: "PUBKEY=",
    throughput: [],
    pending: null,
    last_error: null,
    ...overrides,
  };
}

function snapshot(overrides: Partial<Snapshot> = {}): Snapshot {
  return {
    helper: { kind: "connected", version: "0.1.0" },
    secrets: { kind: "keyring", backend: "the Secret Service keyring" },
    tunnels: [tunnel()],
    last_used: null,
    settings: { connect_on_launch: false, start_at_login: false },
    demo_offer: null,
    ...overrides,
  };
}

const $ = (test: string) => document.querySelector<HTMLElement>(`[data-test="${test}"]`);
const flush = () => new Promise((r) => setTimeout(r, 0));

describe("the app", () => {
  let root: HTMLElement;
  beforeEach(() => {
    document.body.innerHTML = '<div id="app"></div>';
    root = document.getElementById("app")!;
  });

  async function start(s: Snapshot) {
    const backend = new FakeBackend(s);
    const app = new App(backend, root);
    app.now = () => 1_700_000_300_000;
    await app.start();
    return { app, backend };
  }

  it("shows the helper's state and sends connect without changing it", async () => {
    const { backend } = await start(snapshot());
    expect($("state")!.textContent).toBe("Disconnected");
    $("primary")!.click();
    await flush();
    expect(backend.commands()).toEqual(["connect"]);
    expect(backend.calls.at(-1)![1]).toEqual({ name: "home" });
    expect($("state")!.textContent).toBe("Disconnected");

    backend.emit("snapshot", snapshot({ tunnels: [tunnel({ state: { kind: "connecting" } })] }));
    expect($("state")!.textContent).toBe("Connecting…");
    expect($("primary")!.textContent).toBe("Disconnect");
    backend.emit(
      "snapshot",
      snapshot({
        tunnels: [
          tunnel({
            state: { kind: "connected", since_unix_secs: 1_700_000_000 },
            peers: [{ public_key: "PEERKEY1234567=", endpoint: "198.18.0.1:51820", allowed_ips: [], last_handshake_unix_secs: 1_700_000_290, rx_bytes: 2048, tx_bytes: 1000 }],
            throughput: [
              { unix_ms: 1_700_000_298_000, rx_bytes: 0, tx_bytes: 0 },
              { unix_ms: 1_700_000_299_000, rx_bytes: 1000, tx_bytes: 500 },
            ],
          }),
        ],
      }),
    );
    expect($("state")!.textContent).toBe("Connected");
    expect($("detail")!.textContent).toBe("Up for 5 min · latest handshake 10 s ago");
    expect($("peers")!.textContent).toContain("198.18.0.1:51820");
    expect($("peer-rx")!.textContent).toBe("2.05 kB");
    expect($("peer-rx")!.dataset.bytes).toBe("2048");
    expect($("peer-tx")!.dataset.bytes).toBe("1000");
    expect($("peer-handshake")!.dataset.unixSecs).toBe("1700000290");
    expect($("graph")!.textContent).toContain("↓ 1.00 kB/s");
    expect($("graph")!.querySelector("path.rx")!.getAttribute("d")).toMatch(/^M/);
  });

  it("says nothing about the tray where there is one", async () => {
    const { backend } = await start(snapshot());
    expect(backend.calls.map(([c]) => c)).toContain("tray_status");
    expect($("tray-notice")).toBeNull();
  });

  it("says why there is no tray icon, and that closing the window quits, until dismissed", async () => {
    const backend = new FakeBackend(snapshot());
    backend.answers.tray_status = () => ({ kind: "unavailable", reason: "This desktop shows no tray icons (no StatusNotifier host is running)." });
    const app = new App(backend, root);
    await app.start();
    const notice = $("tray-notice")!;
    expect(notice.textContent).toContain("No tray icon.");
    expect(notice.textContent).toContain("no StatusNotifier host");
    expect(notice.textContent).toContain("closing it quits Warren");
    expect(notice.className).not.toContain("error");
    app.view = { kind: "settings" };
    app.render();
    expect(root.textContent).toContain("Start Warren when I log in");
    expect(root.textContent).not.toContain("in the tray when I log in");
    app.view = { kind: "tunnel", name: null };
    app.render();
    $("tray-notice-dismiss")!.click();
    expect($("tray-notice")).toBeNull();
    backend.emit("snapshot", snapshot());
    expect($("tray-notice")).toBeNull();
  });

  it("shows the helper's reason when a tunnel fails", async () => {
    await start(snapshot({ tunnels: [tunnel({ state: { kind: "error", reason: "no route to 198.18.0.1" } })] }));
    expect($("state")!.textContent).toBe("Failed");
    expect($("detail")!.textContent).toBe("no route to 198.18.0.1");
  });

  it("says exactly what to do when the helper is not running", async () => {
    const { backend } = await start(
      snapshot({
        helper: { kind: "not_running", socket: "/run/warren/helper.sock", advice: "start it with `systemctl start warren-helper`" },
        tunnels: [tunnel({ state: { kind: "unknown" } })],
      }),
    );
    const screen = $("helper-screen")!;
    expect(screen.textContent).toContain("not running");
    expect(screen.querySelector("code")!.textContent).toBe("systemctl start warren-helper");
    expect(($("primary") as HTMLButtonElement).disabled).toBe(true);
    $("retry")!.click();
    await flush();
    expect(backend.commands()).toEqual(["retry_helper"]);
    backend.emit("snapshot", snapshot());
    expect($("helper-screen")).toBeNull();
  });

  it("validates the editor's text with the backend and marks the line", async () => {
    vi.useFakeTimers();
    try {
      const { app, backend } = await start(snapshot());
      backend.answers.tunnel_text = () => ({ name: "home", text: "[Interface]\n", public_key: "PUBKEY=" });
      backend.answers.validate_text = (args) =>
        String(args!.text).includes("/33") ? { line: 2, message: "AllowedIPs: bad prefix" } : null;
      await app.edit("home");
      expect($("editor-public-key")!.textContent).toBe("PUBKEY=");
      app.editorInput("[Interface]\nAddress = 198.18.0.1/33\n");
      expect($("diagnostic-ok")!.textContent).toBe("Checking…");
      await vi.advanceTimersByTimeAsync(200);
      expect($("diagnostic")!.textContent).toBe("Line 2: AllowedIPs: bad prefix");
      expect($("gutter-error")!.textContent).toBe("2");
      expect(($("save") as HTMLButtonElement).disabled).toBe(true);
      app.editorInput("[Interface]\nAddress = 198.18.0.1/24\n");
      await vi.advanceTimersByTimeAsync(200);
      expect($("diagnostic")).toBeNull();
      expect(($("save") as HTMLButtonElement).disabled).toBe(false);
      $("save")!.click();
      await vi.advanceTimersByTimeAsync(0);
      expect(backend.commands()).toContain("save_text");
    } finally {
      vi.useRealTimers();
    }
  });

  it("asks before deleting, and reports files that failed to import", async () => {
    const { app, backend } = await start(snapshot());
    app.openDialog({ kind: "delete", name: "home" });
    expect($("dialog")!.textContent).toContain("cannot be undone");
    expect(backend.commands()).toEqual([]);
    $("confirm")!.click();
    await flush();
    expect(backend.commands()).toEqual(["delete_tunnel"]);

    backend.answers.import_files = () => [
      { file: "/tmp/a.conf", imported: "a", error: null },
      { file: "/tmp/b.conf", imported: null, error: { kind: "invalid_config", message: "/tmp/b.conf:7: AllowedIPs: bad", line: 7 } },
    ];
    backend.emit("drop", ["/tmp/a.conf", "/tmp/b.conf", "/tmp/notes.txt"]);
    await flush();
    expect(backend.calls.at(-1)).toEqual(["import_files", { paths: ["/tmp/a.conf", "/tmp/b.conf"] }]);
    expect($("import-report")!.textContent).toContain("/tmp/b.conf:7: AllowedIPs: bad");
  });

  it("checks a new tunnel's name with the backend's rule", async () => {
    const { app, backend } = await start(snapshot());
    backend.answers.validate_name = (args) => (String(args!.name).includes(" ") ? "tunnel name 'a b' contains ' '" : null);
    app.openDialog({ kind: "create", name: "", problem: null });
    await app.dialogName("a b");
    expect($("name-problem")!.textContent).toContain("contains");
    expect(($("confirm") as HTMLButtonElement).disabled).toBe(true);
    await app.dialogName("home");
    expect($("name-problem")!.textContent).toContain("already exists");
    await app.dialogName("work");
    expect($("name-problem")).toBeNull();
    backend.answers.create_tunnel = () => ({ name: "work", text: "[Interface]\n", public_key: "NEWKEY=" });
    $("confirm")!.click();
    await flush();
    expect($("editor-public-key")!.textContent).toBe("NEWKEY=");
  });

  it("warns plainly without a keyring and asks before falling back to files", async () => {
    const { backend } = await start(snapshot({ secrets: { kind: "unavailable", reason: "no Secret Service on the session bus" } }));
    expect($("secrets-banner")!.textContent).toContain("no Secret Service on the session bus");
    const fallBack = Array.from(document.querySelectorAll("button")).find((b) => b.textContent === "Keep keys in files…")!;
    fallBack.click();
    expect($("dialog")!.textContent).toContain("not encrypted");
    expect(backend.commands()).toEqual([]);
    $("confirm")!.click();
    await flush();
    expect(backend.commands()).toEqual(["use_key_files"]);
  });

  it("offers the local demo while there is no tunnel: one click imports, selects and connects it", async () => {
    const offer = { file: "/tmp/warren-run.x/warren-demo.conf", name: "warren-demo" };
    const { backend } = await start(snapshot({ tunnels: [], demo_offer: offer }));
    const card = $("demo-card")!;
    expect(card.textContent).toContain("Try the local demo");
    expect(card.textContent).toContain("network namespace");
    expect(card.textContent).toContain(offer.file);
    backend.answers.accept_demo_offer = () => "warren-demo";
    $("demo-accept")!.click();
    await flush();
    await flush();
    expect(backend.commands()).toEqual(["accept_demo_offer", "connect"]);
    expect(backend.calls.at(-1)![1]).toEqual({ name: "warren-demo" });
    backend.emit("snapshot", snapshot({ tunnels: [tunnel({ name: "warren-demo", state: { kind: "connecting" } })], demo_offer: null }));
    expect($("demo-card")).toBeNull();
    expect(document.querySelector("h1")!.textContent).toBe("warren-demo");
    expect($("state")!.textContent).toBe("Connecting…");
  });

  it("does not offer the demo when a tunnel exists, and says why it cannot be taken yet", async () => {
    const offer = { file: "/tmp/d/warren-demo.conf", name: "warren-demo" };
    const { backend } = await start(snapshot({ demo_offer: offer }));
    expect($("demo-card")).toBeNull();
    backend.emit("snapshot", snapshot({ tunnels: [], demo_offer: offer, secrets: { kind: "unavailable", reason: "no Secret Service" } }));
    expect(($("demo-accept") as HTMLButtonElement).disabled).toBe(true);
    expect($("demo-reason")!.textContent).toContain("keyring");
  });

  it("does not connect when the demo's import fails, and shows why", async () => {
    const { backend } = await start(snapshot({ tunnels: [], demo_offer: { file: "/tmp/d/warren-demo.conf", name: "warren-demo" } }));
    backend.answers.accept_demo_offer = () => {
      throw { kind: "not_found", message: "the demo is no longer running", line: null };
    };
    $("demo-accept")!.click();
    await flush();
    expect(backend.commands()).toEqual(["accept_demo_offer"]);
    expect(document.querySelector(".toast.error")!.textContent).toContain("no longer running");
  });

  it("reports files the backend imported from the command line", async () => {
    const { backend } = await start(snapshot());
    backend.emit("imported", [{ file: "/home/u/office.conf", imported: null, error: { kind: "invalid_config", message: "/home/u/office.conf:3: bad", line: 3 } }]);
    expect($("import-report")!.textContent).toContain("office.conf:3: bad");
  });
});
