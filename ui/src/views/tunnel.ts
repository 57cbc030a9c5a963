// views/tunnel.ts — the connection view of one tunnel: state and the main button, the helper's
// reason when it failed, health, the live throughput graph, peers, options and key actions.

import { h } from "../dom";
import type { HelperStatus, KillSwitchView, TunnelView } from "../generated/bindings";
import { formatAgo, formatBytes, formatRate } from "../logic/format";
import { primaryAction, stateDetail, stateLabel, tunnelTone } from "../logic/state";
import type { DemoCard } from "../logic/demo";
import { GRAPH_SPAN_MS, graph } from "../logic/throughput";

export interface TunnelActions {
  connect(name: string): void;
  disconnect(name: string): void;
  setKillSwitch(name: string, value: KillSwitchView): void;
  setAllowLan(name: string, value: boolean): void;
  edit(name: string): void;
  rename(name: string): void;
  exportConf(name: string): void;
  remove(name: string): void;
  copy(text: string): void;
}

const GRAPH_W = 600;
const GRAPH_H = 120;

export function tunnelView(
  tunnel: TunnelView,
  helper: HelperStatus,
  nowMs: number,
  actions: TunnelActions,
): HTMLElement {
  const action = primaryAction(tunnel, helper);
  const nowSecs = Math.floor(nowMs / 1000);
  const detail = stateDetail(tunnel, nowSecs);
  const live = tunnel.state.kind === "connected" || tunnel.state.kind === "connecting";
  return h(
    "section",
    { class: "tunnel-view", "data-key": `tunnel-${tunnel.name}` },
    h(
      "header",
      { class: "tunnel-head" },
      h("div", null, h("h1", null, tunnel.name), h("span", { class: "kind" }, tunnel.kind === "system" ? "System tunnel" : "Your tunnel")),
      h("span", { class: `badge tone-${tunnelTone(tunnel)}`, "data-test": "state" }, stateLabel(tunnel.state)),
      h(
        "button",
        {
          class: action.action === "connect" ? "primary" : "danger",
          disabled: !action.enabled,
          title: action.reason ?? "",
          "data-test": "primary",
          onclick: () => (action.action === "connect" ? actions.connect(tunnel.name) : actions.disconnect(tunnel.name)),
        },
        action.label,
      ),
    ),
    detail ? h("p", { class: `detail tone-${tunnelTone(tunnel)}`, "data-test": "detail" }, detail) : null,
    tunnel.health?.kind === "degraded"
      ? h("ul", { class: "degraded" }, tunnel.health.reasons.map((r) => h("li", null, r)))
      : null,
    tunnel.last_error && tunnel.state.kind !== "disconnected"
      ? h("p", { class: "request-error" }, `Last request failed: ${tunnel.last_error}`)
      : null,
    live ? graphView(tunnel, nowMs) : null,
    tunnel.peers.length > 0 ? peersView(tunnel, nowSecs, actions) : null,
    optionsView(tunnel, actions),
    tunnel.stored ? keyView(tunnel, actions) : null,
    tunnel.stored
      ? h(
          "footer",
          { class: "tunnel-actions" },
          h("button", { onclick: () => actions.edit(tunnel.name) }, "Edit"),
          h("button", { onclick: () => actions.rename(tunnel.name) }, "Rename"),
          h("button", { onclick: () => actions.exportConf(tunnel.name) }, "Export .conf"),
          h("button", { class: "danger-quiet", onclick: () => actions.remove(tunnel.name), "data-test": "delete" }, "Delete"),
        )
      : h("p", { class: "hint" }, "System tunnels are managed by an administrator (warren-helper)."),
  );
}

function graphView(tunnel: TunnelView, nowMs: number): HTMLElement {
  const g = graph(tunnel.throughput, { width: GRAPH_W, height: GRAPH_H, nowMs, spanMs: GRAPH_SPAN_MS });
  return h(
    "section",
    { class: "graph", "data-test": "graph" },
    h(
      "div",
      { class: "graph-legend" },
      h("span", { class: "rx" }, `↓ ${formatRate(g.latest?.rx ?? 0)}`),
      h("span", { class: "tx" }, `↑ ${formatRate(g.latest?.tx ?? 0)}`),
      h("span", { class: "axis" }, `scale ${formatRate(g.max)} · last 5 min`),
    ),
    h(
      "svg",
      { viewBox: `0 0 ${GRAPH_W} ${GRAPH_H}`, preserveAspectRatio: "none", role: "img", "aria-label": "Throughput, last five minutes" },
      h("line", { x1: 0, y1: GRAPH_H / 2, x2: GRAPH_W, y2: GRAPH_H / 2, class: "grid" }),
      h("path", { d: g.rxPath, class: "rx" }),
      h("path", { d: g.txPath, class: "tx" }),
    ),
  );
}

function peersView(tunnel: TunnelView, nowSecs: number, actions: TunnelActions): HTMLElement {
  return h(
    "table",
    { class: "peers", "data-test": "peers" },
    h("thead", null, h("tr", null, ["Peer", "Endpoint", "Latest handshake", "Received", "Sent"].map((t) => h("th", null, t)))),
    h(
      "tbody",
      null,
      tunnel.peers.map((p) =>
        h(
          "tr",
          { "data-key": p.public_key },
          h("td", null, h("code", { title: p.public_key, onclick: () => actions.copy(p.public_key) }, `${p.public_key.slice(0, 10)}…`)),
          h("td", null, p.endpoint ?? "—"),
          // The exact values ride along as attributes, for the end-to-end tests (tests/gui/e2e.sh).
          h("td", { "data-test": "peer-handshake", "data-unix-secs": p.last_handshake_unix_secs ?? "" }, formatAgo(p.last_handshake_unix_secs, nowSecs)),
          h("td", { "data-test": "peer-rx", "data-bytes": p.rx_bytes }, formatBytes(p.rx_bytes)),
          h("td", { "data-test": "peer-tx", "data-bytes": p.tx_bytes }, formatBytes(p.tx_bytes)),
        ),
      ),
    ),
  );
}

function optionsView(tunnel: TunnelView, actions: TunnelActions): HTMLElement {
  const ks = tunnel.options.kill_switch;
  const option = (value: KillSwitchView, label: string) => h("option", { value, selected: ks === value }, label);
  return h(
    "section",
    { class: "options" },
    h("h2", null, "Options"),
    h(
      "label",
      null,
      "Block traffic outside the tunnel (kill switch) ",
      h(
        "select",
        {
          "data-test": "kill-switch",
          onchange: (e: Event) => actions.setKillSwitch(tunnel.name, (e.target as HTMLSelectElement).value as KillSwitchView),
        },
        option("auto", "Automatic (full tunnels only)"),
        option("on", "Always"),
        option("off", "Never"),
      ),
    ),
    h(
      "label",
      null,
      h("input", {
        type: "checkbox",
        checked: tunnel.options.allow_lan,
        "data-test": "allow-lan",
        onchange: (e: Event) => actions.setAllowLan(tunnel.name, (e.target as HTMLInputElement).checked),
      }),
      " Allow the local network (printers, NAS, router) while blocking",
    ),
  );
}

function keyView(tunnel: TunnelView, actions: TunnelActions): HTMLElement {
  return h(
    "section",
    { class: "public-key" },
    h("h2", null, "Public key"),
    tunnel.public_key
      ? h(
          "p",
          null,
          h("code", { "data-test": "public-key" }, tunnel.public_key),
          " ",
          h("button", { class: "small", onclick: () => actions.copy(tunnel.public_key!) }, "Copy"),
        )
      : h("p", { class: "hint" }, "The private key could not be read from the key store."),
    h("p", { class: "hint" }, "Give this key to the peer’s administrator. The private key stays in your keyring."),
  );
}

/** The main pane when there are no tunnels at all. */
export function emptyView(actions: { importDialog(): void; create(): void }, demo: HTMLElement | null = null): HTMLElement {
  return h(
    "section",
    { class: "empty", "data-key": "empty" },
    h("h1", null, "No tunnels yet"),
    demo,
    h("p", null, "Import a WireGuard configuration (.conf) — or drop one or more files on this window — or create a new tunnel with a fresh key pair."),
    h(
      "p",
      null,
      h("button", { class: demo ? null : "primary", onclick: () => actions.importDialog() }, "Import .conf files…"),
      " ",
      h("button", { onclick: () => actions.create() }, "New tunnel"),
    ),
  );
}

/** The local demo on offer (see logic/demo.ts): what it is, and one button. */
export function demoCardView(card: DemoCard, actions: { accept(): void }): HTMLElement {
  return h(
    "div",
    { class: "demo-card", "data-test": "demo-card" },
    h("h2", null, "Try the local demo"),
    h(
      "p",
      null,
      "See a working tunnel right now, without a VPN server: a WireGuard peer is running in a network namespace — a separate, private network stack — on this computer. ",
      `“Import and connect” adds it as the tunnel “${card.offer.name}” (its private key goes to your keyring, like any tunnel’s) and connects it. `,
      "It uses test addresses only (198.18.0.0/15, fd00::/8): nothing else on your network changes.",
    ),
    h(
      "p",
      null,
      h("button", { class: "primary", disabled: !card.enabled, title: card.reason ?? "", onclick: () => actions.accept(), "data-test": "demo-accept" }, "Import and connect"),
      card.reason ? h("span", { class: "hint", "data-test": "demo-reason" }, ` ${card.reason}`) : null,
    ),
    h("p", { class: "hint" }, `From ${card.offer.file}, written by the demo. Afterwards it is an ordinary tunnel: disconnect or delete it whenever you like.`),
  );
}
