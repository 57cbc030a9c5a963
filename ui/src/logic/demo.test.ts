import { describe, expect, it } from "vitest";
import type { Snapshot, TunnelView } from "../generated/bindings";
import { demoCard } from "./demo";

const offer = { file: "/tmp/warren-run.x/warren-demo.conf", name: "warren-demo" };

function snapshot(overrides: Partial<Snapshot> = {}): Snapshot {
  return {
    helper: { kind: "connected", version: "0.1.0" },
    secrets: { kind: "keyring", backend: "the Secret Service keyring" },
    tunnels: [],
    last_used: null,
    settings: { connect_on_launch: false, start_at_login: false },
    demo_offer: offer,
    ...overrides,
  };
}

const system: TunnelView = {
  name: "office",
  kind: "system",
  stored: false,
  state: { kind: "disconnected" },
  health: null,
  peers: [],
  options: { kill_switch: "auto", allow_lan: false },
  public_key: null,
  throughput: [],
  pending: null,
  last_error: null,
};

describe("the demo card", () => {
  it("is offered when the app has an offer and no tunnel", () => {
    expect(demoCard(snapshot())).toEqual({ offer, enabled: true, reason: null });
  });

  it("is not offered without an offer (no --offer-demo, or its file is missing)", () => {
    expect(demoCard(snapshot({ demo_offer: null }))).toBeNull();
  });

  it("is not offered once any tunnel exists, even an administrator's", () => {
    expect(demoCard(snapshot({ tunnels: [system] }))).toBeNull();
    expect(demoCard(snapshot({ tunnels: [{ ...system, kind: "user", stored: true }] }))).toBeNull();
  });

  it("waits for the helper and for a keyring, saying why", () => {
    const waiting = demoCard(snapshot({ helper: { kind: "connecting" } }))!;
    expect(waiting.enabled).toBe(false);
    expect(waiting.reason).toContain("helper");
    const noKeyring = demoCard(snapshot({ secrets: { kind: "unavailable", reason: "no Secret Service" } }))!;
    expect(noKeyring.enabled).toBe(false);
    expect(noKeyring.reason).toContain("keyring");
    expect(demoCard(snapshot({ secrets: { kind: "file", path: "/home/u/keys" } }))!.enabled).toBe(true);
  });
});
