// demo.ts — whether to offer the local demo, and whether it can be taken now. The backend only
// reports an offer when the app was started with one and its file exists (scripts/run.sh starts
// `warren-helper demo --peer-only` and passes its file); the rule that it is for people with no
// tunnel at all lives here. Pure; see demo.test.ts.

import type { DemoOfferView, Snapshot } from "../generated/bindings";

export interface DemoCard {
  offer: DemoOfferView;
  /** Whether "Import and connect" can be pressed now. */
  enabled: boolean;
  /** Why not, when it cannot. */
  reason: string | null;
}

/** The demo card to show, or null: only with an offer and no tunnel of any kind. */
export function demoCard(snapshot: Snapshot): DemoCard | null {
  const offer = snapshot.demo_offer;
  if (!offer || snapshot.tunnels.length > 0) return null;
  if (snapshot.helper.kind !== "connected") {
    return { offer, enabled: false, reason: "Waiting for Warren’s helper." };
  }
  if (snapshot.secrets.kind === "unavailable") {
    return { offer, enabled: false, reason: "The demo’s private key needs a home first: see the keyring notice above." };
  }
  return { offer, enabled: true, reason: null };
}
