// Generated from src-tauri/src/model.rs by ts-rs. Do not edit by hand: change the Rust
// types and run `WARREN_BLESS_BINDINGS=1 cargo test -p warren-app bindings`.

export type Snapshot = { 
/**
 * Whether the helper answers, and if not, what to do about it.
 */
helper: HelperStatus, 
/**
 * Where private keys are kept, or why they cannot be.
 */
secrets: SecretsStatus, 
/**
 * The user's own tunnels (stored by this app) and every tunnel the helper reports, by name.
 */
tunnels: Array<TunnelView>, 
/**
 * The tunnel the tray's one-click toggle acts on.
 */
last_used: string | null, 
/**
 * The app's preferences.
 */
settings: SettingsView, 
/**
 * The local demo the app was started to offer (`--offer-demo FILE`), until it is accepted.
 * The UI shows it only while there is no tunnel at all.
 */
demo_offer: DemoOfferView | null, };

export type HelperStatus = { "kind": "connecting" } | { "kind": "connected", 
/**
 * The helper's release.
 */
version: string, } | { "kind": "not_running", 
/**
 * The socket or pipe path.
 */
socket: string, 
/**
 * What to do, e.g. "start it with `systemctl start warren-helper`".
 */
advice: string, } | { "kind": "permission_denied", 
/**
 * The socket or pipe path.
 */
socket: string, 
/**
 * What to do, e.g. "add yourself to group `warren` … and log in again".
 */
advice: string, } | { "kind": "refused", 
/**
 * The helper's (or the version check's) complete sentence.
 */
message: string, } | { "kind": "unreachable", 
/**
 * What happened.
 */
message: string, };

export type SecretsStatus = { "kind": "keyring", 
/**
 * Which one, for the settings view.
 */
backend: string, } | { "kind": "unavailable", 
/**
 * Why, in the keyring library's words.
 */
reason: string, } | { "kind": "file", 
/**
 * The directory holding one key file per tunnel.
 */
path: string, };

export type TunnelView = { 
/**
 * The tunnel's name.
 */
name: string, 
/**
 * `user` if this app stores it (or the helper says a client handed it over), `system` if an
 * administrator installed it.
 */
kind: TunnelKindView, 
/**
 * True when this app stores it: it can be edited, renamed, deleted and exported here.
 */
stored: boolean, 
/**
 * Its state, exactly as the helper last reported it; `unknown` while the helper is
 * unreachable.
 */
state: StateView, 
/**
 * `None` unless connected.
 */
health: HealthView | null, 
/**
 * Live per-peer state, from the helper's latest stats.
 */
peers: Array<PeerView>, 
/**
 * Kill switch and LAN access.
 */
options: OptionsView, 
/**
 * This tunnel's own public key (stored tunnels only), for the "copy" button.
 */
public_key: string | null, 
/**
 * Total rx/tx over the last [`crate::controller::HISTORY_SECS`] seconds, oldest first.
 */
throughput: Array<Sample>, 
/**
 * A request sent for this tunnel and not answered yet. Not a state: the state changes only
 * when the helper says so.
 */
pending: PendingRequest | null, 
/**
 * The helper's answer to the latest failed request for this tunnel.
 */
last_error: string | null, };

export type TunnelKindView = "user" | "system";

export type StateView = { "kind": "unknown" } | { "kind": "disconnected" } | { "kind": "connecting" } | { "kind": "waiting_for_network", 
/**
 * The helper's sentence (the resolver's answer).
 */
reason: string, } | { "kind": "connected", 
/**
 * When, in seconds since the Unix epoch.
 */
since_unix_secs: number, } | { "kind": "reconnecting", 
/**
 * The helper's words: `network changed`.
 */
reason: string, } | { "kind": "disconnecting" } | { "kind": "error", 
/**
 * The helper's sentence.
 */
reason: string, };

export type HealthView = { "kind": "healthy" } | { "kind": "degraded", 
/**
 * One sentence per problem, in the helper's words.
 */
reasons: Array<string>, };

export type PeerView = { 
/**
 * Base64, as in a `.conf` file.
 */
public_key: string, 
/**
 * `198.18.0.1:51820`, once known.
 */
endpoint: string | null, 
/**
 * The networks routed to the peer.
 */
allowed_ips: Array<string>, 
/**
 * Seconds since the Unix epoch; `None` if never.
 */
last_handshake_unix_secs: number | null, 
/**
 * Bytes received.
 */
rx_bytes: number, 
/**
 * Bytes sent.
 */
tx_bytes: number, };

export type Sample = { 
/**
 * When the stats arrived, in milliseconds since the Unix epoch.
 */
unix_ms: number, 
/**
 * Total bytes received.
 */
rx_bytes: number, 
/**
 * Total bytes sent.
 */
tx_bytes: number, };

export type PendingRequest = "connect" | "disconnect";

export type OptionsView = { 
/**
 * Block traffic outside the tunnel.
 */
kill_switch: KillSwitchView, 
/**
 * With the kill switch on, still allow the local networks.
 */
allow_lan: boolean, };

export type KillSwitchView = "off" | "on" | "auto";

export type SettingsView = { 
/**
 * Connect the last-used tunnel when the app starts.
 */
connect_on_launch: boolean, 
/**
 * Start the app (in the tray) at login.
 */
start_at_login: boolean, };

export type TrayStatus = { "kind": "available" } | { "kind": "unavailable", 
/**
 * One short sentence: why not.
 */
reason: string, };

export type DemoOfferView = { 
/**
 * The file that would be imported.
 */
file: string, 
/**
 * The tunnel's name once imported (the file's name without `.conf`).
 */
name: string, };

export type LogLineView = { 
/**
 * Milliseconds since the Unix epoch.
 */
unix_ms: number, 
/**
 * `error`, `warn`, `info`, `debug` or `trace`.
 */
level: string, 
/**
 * The module that logged it.
 */
target: string, 
/**
 * The message.
 */
message: string, };

export type Diagnostic = { 
/**
 * The 1-based line in the edited text.
 */
line: number | null, 
/**
 * What is wrong.
 */
message: string, };

export type TunnelText = { 
/**
 * The tunnel's name.
 */
name: string, 
/**
 * wg-quick text without the `PrivateKey` line (the key stays in the keyring).
 */
text: string, 
/**
 * The tunnel's public key, base64.
 */
public_key: string, };

export type ImportOutcome = { 
/**
 * The file as given.
 */
file: string, 
/**
 * The new tunnel's name, if it was imported.
 */
imported: string | null, 
/**
 * Why not, if it was not.
 */
error: UiError | null, };

export type UiError = { 
/**
 * What kind of failure.
 */
kind: UiErrorKind, 
/**
 * A complete sentence.
 */
message: string, 
/**
 * For configuration errors, the 1-based line.
 */
line: number | null, };

export type UiErrorKind = "helper_unavailable" | "helper" | "invalid_config" | "invalid_name" | "not_found" | "exists" | "secrets" | "io";
