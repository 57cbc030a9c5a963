import { describe, expect, it } from "vitest";
import type { HelperStatus, TunnelView } from "../generated/bindings";
import { helperHelp, isUp, primaryAction, secretsWarning, sortTunnels, splitAdvice, stateDetail, stateLabel, tunnelTone } from "./state";

const connected: HelperStatus = { kind: "connected", version: "0.1.0" };

function tunnel(overrides: Partial<TunnelView> = {}): TunnelView {
  return {
    name: "home",
    kind: "user",
    stored: true,
    state: { kind: "disconnected" },
    health: null,
    peers: [],
    options: { kill_switch: "auto", allow_lan: false },
    public_key: "pk",
    throughput: [],
    pending: null,
    last_error: null,
    ...overrides,
  };
}

describe("tunnel state mapping", () => {
  it("labels and tones every state", () => {
    expect(stateLabel({ kind: "connected", since_unix_secs: 1 })).toBe("Connected");
    expect(stateLabel({ kind: "error", reason: "x" })).toBe("Failed");
    expect(stateLabel({ kind: "unknown" })).toBe("Unknown");
    expect(tunnelTone(tunnel({ state: { kind: "connected", since_unix_secs: 1 } }))).toBe("ok");
    expect(
      tunnelTone(tunnel({ state: { kind: "connected", since_unix_secs: 1 }, health: { kind: "degraded", reasons: ["stale"] } })),
    ).toBe("warn");
    expect(tunnelTone(tunnel({ state: { kind: "connecting" } }))).toBe("busy");
    expect(tunnelTone(tunnel({ state: { kind: "error", reason: "x" } }))).toBe("error");
    expect(tunnelTone(tunnel({ state: { kind: "unknown" } }))).toBe("unknown");
  });

  it("shows a tunnel waiting for the network as busy, not failed, with the helper's reason", () => {
    const waiting = tunnel({ state: { kind: "waiting_for_network", reason: "failed to resolve vpn.example:51820" } });
    expect(stateLabel(waiting.state)).toBe("Waiting for network…");
    expect(tunnelTone(waiting)).toBe("busy");
    expect(stateDetail(waiting, 0)).toContain("failed to resolve vpn.example:51820");
    expect(stateDetail(waiting, 0)).toContain("connects by itself");
    expect(isUp(waiting.state)).toBe(true);
    expect(primaryAction(waiting, connected)).toEqual({ label: "Disconnect", action: "disconnect", enabled: true });
  });

  it("shows a tunnel reconnecting after a network change as busy, with its latest handshake", () => {
    const reconnecting = tunnel({
      state: { kind: "reconnecting", reason: "network changed" },
      peers: [
        { public_key: "pk", endpoint: "198.18.0.2:51820", allowed_ips: [], last_handshake_unix_secs: 940, rx_bytes: 1, tx_bytes: 1 },
      ],
    });
    expect(stateLabel(reconnecting.state)).toBe("Reconnecting (network changed)…");
    expect(tunnelTone(reconnecting)).toBe("busy");
    expect(stateDetail(reconnecting, 1000)).toContain("The network changed");
    expect(stateDetail(reconnecting, 1000)).toContain("latest handshake 1 min ago");
    expect(isUp(reconnecting.state)).toBe(true);
    expect(primaryAction(reconnecting, connected)).toEqual({ label: "Disconnect", action: "disconnect", enabled: true });
  });

  it("offers disconnect whenever something of the tunnel may be up", () => {
    expect(isUp({ kind: "error", reason: "x" })).toBe(true);
    expect(primaryAction(tunnel(), connected)).toEqual({ label: "Connect", action: "connect", enabled: true });
    expect(primaryAction(tunnel({ state: { kind: "connecting" } }), connected).action).toBe("disconnect");
    expect(primaryAction(tunnel({ state: { kind: "error", reason: "x" } }), connected).action).toBe("disconnect");
  });

  it("never acts on a state it does not know, and shows requests in flight as waiting", () => {
    const offline: HelperStatus = { kind: "unreachable", message: "gone" };
    expect(primaryAction(tunnel({ state: { kind: "unknown" } }), offline)).toMatchObject({ enabled: false, reason: "The helper is not reachable." });
    const waiting = primaryAction(tunnel({ pending: "connect" }), connected);
    expect(waiting).toMatchObject({ label: "Connecting…", enabled: false });
    expect(stateLabel(tunnel({ pending: "connect" }).state)).toBe("Disconnected");
    expect(primaryAction(tunnel({ state: { kind: "disconnecting" } }), connected)).toMatchObject({ label: "Disconnecting…", enabled: false });
  });

  it("describes a connection with its age and latest handshake, and a failure with the helper's reason", () => {
    const up = tunnel({
      state: { kind: "connected", since_unix_secs: 1000 },
      peers: [
        { public_key: "a", endpoint: null, allowed_ips: [], last_handshake_unix_secs: 1100, rx_bytes: 0, tx_bytes: 0 },
        { public_key: "b", endpoint: null, allowed_ips: [], last_handshake_unix_secs: 1288, rx_bytes: 0, tx_bytes: 0 },
        { public_key: "c", endpoint: null, allowed_ips: [], last_handshake_unix_secs: null, rx_bytes: 0, tx_bytes: 0 },
      ],
    });
    expect(stateDetail(up, 1300)).toBe("Up for 5 min · latest handshake 12 s ago");
    expect(stateDetail(tunnel({ state: { kind: "error", reason: "no route to 198.18.0.1" } }), 0)).toBe("no route to 198.18.0.1");
    expect(stateDetail(tunnel({ last_error: "refused" }), 0)).toBe("refused");
  });

  it("lists tunnels that are up first", () => {
    const names = sortTunnels([
      tunnel({ name: "b" }),
      tunnel({ name: "c", state: { kind: "connected", since_unix_secs: 1 } }),
      tunnel({ name: "a" }),
    ]).map((t) => t.name);
    expect(names).toEqual(["c", "a", "b"]);
  });
});

describe("helper screen", () => {
  it("says how to start a helper that is not running", () => {
    const help = helperHelp({ kind: "not_running", socket: "/run/warren/helper.sock", advice: "start it with `systemctl start warren-helper`" })!;
    expect(help.title).toMatch(/not running/);
    expect(help.text).toContain("/run/warren/helper.sock");
    expect(help.commands).toEqual(["systemctl start warren-helper"]);
  });

  it("says to join group warren and log in again when access is denied", () => {
    const help = helperHelp({
      kind: "permission_denied",
      socket: "/run/warren/helper.sock",
      advice: 'add yourself to group `warren` (`sudo usermod -aG warren "$USER"`) and log in again',
    })!;
    expect(help.text).toContain("group “warren”");
    expect(help.text).toContain("log out and back in");
    expect(help.commands).toEqual(['sudo usermod -aG warren "$USER"']);
  });

  it("is absent while connected or connecting", () => {
    expect(helperHelp(connected)).toBeNull();
    expect(helperHelp({ kind: "connecting" })).toBeNull();
    expect(helperHelp({ kind: "refused", message: "update the helper" })?.text).toBe("update the helper");
  });

  it("keeps single words in backquotes as text, not commands", () => {
    expect(splitAdvice("join `warren` with `sudo usermod -aG warren me`")).toEqual({
      text: "join “warren” with “sudo usermod -aG warren me”",
      commands: ["sudo usermod -aG warren me"],
    });
  });
});

describe("keyring banner", () => {
  it("warns plainly when there is no keyring and when keys are in files", () => {
    expect(secretsWarning({ kind: "keyring", backend: "the Secret Service keyring" })).toBeNull();
    const missing = secretsWarning({ kind: "unavailable", reason: "no Secret Service" })!;
    expect(missing.canFallBack).toBe(true);
    expect(missing.text).toContain("no Secret Service");
    const files = secretsWarning({ kind: "file", path: "/home/u/.config/net.warren.desktop/keys" })!;
    expect(files.text).toContain("unencrypted");
    expect(files.canFallBack).toBe(false);
  });
});
