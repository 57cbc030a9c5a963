// state.ts — what the UI says about a tunnel and the helper, derived only from the snapshot the
// backend sends (which mirrors the helper's events). Nothing here invents a state: a request in
// flight is shown as "pending", never as "connecting". Pure functions; see state.test.ts.

import type {
  HelperStatus,
  SecretsStatus,
  StateView,
  TunnelView,
} from "../generated/bindings";
import { formatAgo, formatDuration } from "./format";

/** The visual tone of a state, used as a CSS class. */
export type Tone = "ok" | "warn" | "busy" | "error" | "off" | "unknown";

/** "Connected", "Connecting…", … */
export function stateLabel(state: StateView): string {
  switch (state.kind) {
    case "unknown":
      return "Unknown";
    case "disconnected":
      return "Disconnected";
    case "connecting":
      return "Connecting…";
    case "waiting_for_network":
      return "Waiting for network…";
    case "connected":
      return "Connected";
    case "reconnecting":
      return "Reconnecting (network changed)…";
    case "disconnecting":
      return "Disconnecting…";
    case "error":
      return "Failed";
  }
}

/** The tone of a tunnel: a connected but degraded tunnel is a warning, not "ok". */
export function tunnelTone(tunnel: TunnelView): Tone {
  switch (tunnel.state.kind) {
    case "unknown":
      return "unknown";
    case "disconnected":
      return "off";
    case "connecting":
    case "waiting_for_network":
    case "reconnecting":
    case "disconnecting":
      return "busy";
    case "connected":
      return tunnel.health?.kind === "degraded" ? "warn" : "ok";
    case "error":
      return "error";
  }
}

/** True in the states where "Disconnect" is the action. */
export function isUp(state: StateView): boolean {
  return (
    state.kind === "connecting" ||
    state.kind === "waiting_for_network" ||
    state.kind === "connected" ||
    state.kind === "reconnecting" ||
    state.kind === "error"
  );
}

export interface Action {
  /** The button's label. */
  label: string;
  /** What it does. */
  action: "connect" | "disconnect";
  /** Whether it can be pressed now. */
  enabled: boolean;
  /** Why not, when it cannot. */
  reason?: string;
}

/** The main button of the connection view. */
export function primaryAction(tunnel: TunnelView, helper: HelperStatus): Action {
  const up = isUp(tunnel.state) || tunnel.state.kind === "disconnecting";
  const base: Action = up
    ? { label: "Disconnect", action: "disconnect", enabled: true }
    : { label: "Connect", action: "connect", enabled: true };
  if (helper.kind !== "connected" || tunnel.state.kind === "unknown") {
    return { ...base, enabled: false, reason: "The helper is not reachable." };
  }
  if (tunnel.pending === "connect") {
    return { ...base, label: "Connecting…", enabled: false, reason: "Waiting for the helper." };
  }
  if (tunnel.pending === "disconnect" || tunnel.state.kind === "disconnecting") {
    return { ...base, label: "Disconnecting…", enabled: false, reason: "Waiting for the helper." };
  }
  return base;
}

/** The newest handshake over all peers (Unix seconds), or null if none. */
export function latestHandshake(tunnel: TunnelView): number | null {
  let latest: number | null = null;
  for (const peer of tunnel.peers) {
    const t = peer.last_handshake_unix_secs;
    if (t !== null && (latest === null || t > latest)) latest = t;
  }
  return latest;
}

/** A line under the state: "for 5 min · handshake 12 s ago", the helper's reason, … */
export function stateDetail(tunnel: TunnelView, nowSecs: number): string {
  const state = tunnel.state;
  switch (state.kind) {
    case "unknown":
      return "The helper is not reachable, so the state of this tunnel is not known.";
    case "disconnected":
      return tunnel.last_error ?? "";
    case "connecting":
      return "Waiting for the first handshake with the peer.";
    case "waiting_for_network":
      return `The server's name does not resolve yet (${state.reason}); it connects by itself once it does.`;
    case "connected": {
      const up = `Up for ${formatDuration(nowSecs - state.since_unix_secs)}`;
      return `${up} · latest handshake ${formatAgo(latestHandshake(tunnel), nowSecs)}`;
    }
    case "reconnecting":
      return `The network changed; a new handshake with the peer is under way (latest handshake ${formatAgo(latestHandshake(tunnel), nowSecs)}).`;
    case "disconnecting":
      return "Undoing routes, DNS and firewall changes.";
    case "error":
      return state.reason;
  }
}

/** What to tell the user when the helper is not usable: a title, sentences and commands. */
export interface HelperHelp {
  title: string;
  text: string;
  commands: string[];
}

/** Splits advice like "start it with `systemctl start warren-helper`" into text and commands. */
export function splitAdvice(advice: string): { text: string; commands: string[] } {
  const commands: string[] = [];
  const text = advice.replace(/`([^`]+)`/g, (_, code: string) => {
    commands.push(code);
    return `“${code}”`;
  });
  return { text, commands: commands.filter((c) => c.includes(" ")) };
}

/** The helper screen's content, or null when the helper is connected (or still connecting). */
export function helperHelp(helper: HelperStatus): HelperHelp | null {
  switch (helper.kind) {
    case "connected":
    case "connecting":
      return null;
    case "not_running": {
      const { text, commands } = splitAdvice(helper.advice);
      return {
        title: "Warren’s helper is not running",
        text: `Nothing answers on ${helper.socket}. The helper is the system service that sets up tunnels; ${text}.`,
        commands: commands.length > 0 ? commands : ["sudo systemctl start warren-helper"],
      };
    }
    case "permission_denied": {
      const { text, commands } = splitAdvice(helper.advice);
      return {
        title: "You may not use Warren’s helper yet",
        text:
          (helper.socket ? `The helper’s socket ${helper.socket} is for members of group “warren”: ` : "") +
          `${text}. Group changes apply to new sessions only: log out and back in after the change.`,
        commands: commands.length > 0 ? commands : ['sudo usermod -aG warren "$USER"'],
      };
    }
    case "refused":
      return {
        title: "Warren’s helper refused the connection",
        text: helper.message,
        commands: [],
      };
    case "unreachable":
      return {
        title: "Warren’s helper cannot be reached",
        text: `${helper.message}. Warren keeps trying every few seconds.`,
        commands: [],
      };
  }
}

/** The keyring banner's content, or null when keys have a home. */
export function secretsWarning(secrets: SecretsStatus): { title: string; text: string; canFallBack: boolean } | null {
  switch (secrets.kind) {
    case "keyring":
      return null;
    case "unavailable":
      return {
        title: "No keyring is available",
        text:
          `Warren keeps private keys in your desktop’s keyring, and none answers (${secrets.reason}). ` +
          "Start your keyring (for example GNOME Keyring or KWallet) and check again — or, if this " +
          "machine has none, keep keys in files instead.",
        canFallBack: true,
      };
    case "file":
      return {
        title: "Private keys are stored in files",
        text:
          `Keys are kept unencrypted in ${secrets.path}, readable by you and by administrators — ` +
          "and by anything that reads your files, including backups.",
        canFallBack: false,
      };
  }
}

/** The warning the user must accept before keys go into files. */
export const KEY_FILE_WARNING =
  "Without a keyring, Warren can keep each tunnel’s private key in a file that only your user " +
  "can read. The file is not encrypted: anyone who can read your files (an administrator, a " +
  "backup, malware running as you) gets the keys and can impersonate your devices. Use this only " +
  "on machines without a keyring.";

/** Sorts tunnels for the list: up ones first, then by name. */
export function sortTunnels(tunnels: TunnelView[]): TunnelView[] {
  return [...tunnels].sort((a, b) => {
    const upA = isUp(a.state) ? 0 : 1;
    const upB = isUp(b.state) ? 0 : 1;
    return upA - upB || a.name.localeCompare(b.name);
  });
}
