//! Where things are: every well-known file and directory the helper uses, per OS, in one place.
//! Other modules ask here rather than spell a path; a command-line option that overrides one
//! (`--state-dir`, `--tunnels-dir`, `--log-dir`, `--socket`) falls back to the function here.
//!
//! The helper's own:
//! - the state directory ([`state_dir`]: `$WARREN_STATE_DIR`, else `/var/lib/warren`, on Windows
//!   `%ProgramData%\Warren`), which holds the journals and their locks (`<ifname>.journal`,
//!   `<ifname>.lock`, see `crate::journal`), the lock around shared kernel settings
//!   ([`shared_sysctl_lock`]), the DNS backups ([`dns_backup_dir`]) and the demo's
//!   keys ([`demo_keys_file`]);
//! - the system tunnels ([`system_tunnels_dir`]: `/etc/warren/tunnels`);
//! - the daemon's log files ([`log_dir`]: `/var/log/warren`);
//! - the daemon's socket ([`daemon_socket`]), defined by `warren-proto` because every client
//!   needs it too;
//! - the UAPI sockets `wg` talks to ([`UAPI_SOCKET_DIR`], on Windows pipes under
//!   [`UAPI_PIPE_PREFIX`]) and the demo peer's own UAPI directory ([`DEMO_PEER_UAPI_DIR`]).
//!
//! Other programs' files the helper reads or changes: [`RESOLV_CONF`], systemd-resolved's
//! [`RESOLVED_RUN_DIR`], resolvconf's [`RESOLVCONF_INTERFACE_ORDER`], `ip netns`'s [`NETNS_DIR`].
//!
//! Why a module of its own: the state directory was the journal's, and the log, DNS backup and
//! tunnels directories were derived from it in three other modules; a path spelled in two places
//! drifts.

use std::path::PathBuf;

/// The environment variable naming the state directory.
pub const STATE_DIR_ENV: &str = "WARREN_STATE_DIR";

/// The state directory on Unix unless [`STATE_DIR_ENV`] says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/warren";

/// `$WARREN_STATE_DIR`, or [`DEFAULT_STATE_DIR`] (on Windows `%ProgramData%\Warren`): the
/// journals, their locks, the DNS backups, the demo's keys.
pub fn state_dir() -> PathBuf {
    match std::env::var_os(STATE_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ if cfg!(windows) => std::env::var_os("ProgramData")
            .map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from)
            .join("Warren"),
        _ => PathBuf::from(DEFAULT_STATE_DIR),
    }
}

/// The file name of the lock around kernel settings that tunnels share (`crate::sys::setting_lock`).
/// Its stem is longer than any interface name (15 characters), so it can never be a journal's
/// `<ifname>.lock`.
pub const SHARED_SYSCTL_LOCK_FILE: &str = "shared-sysctl-settings.lock";

/// `<state_dir>/`[`SHARED_SYSCTL_LOCK_FILE`]: the lock next to the journals it guards.
pub fn shared_sysctl_lock(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join(SHARED_SYSCTL_LOCK_FILE)
}

/// Where the `file` DNS method keeps the original `/etc/resolv.conf` while a tunnel is up.
pub fn dns_backup_dir() -> PathBuf {
    state_dir().join("dns")
}

/// The demo's key pairs (`warren-helper demo --peer-only`), kept across runs.
pub fn demo_keys_file() -> PathBuf {
    state_dir().join("demo.keys")
}

/// The system tunnels: `/etc/warren/tunnels` (Windows: `tunnels` in the state directory).
pub fn system_tunnels_dir() -> PathBuf {
    if cfg!(windows) {
        state_dir().join("tunnels")
    } else {
        PathBuf::from("/etc/warren/tunnels")
    }
}

/// The daemon's log files: `/var/log/warren` (Windows: `logs` in the state directory).
pub fn log_dir() -> PathBuf {
    if cfg!(windows) {
        state_dir().join("logs")
    } else {
        PathBuf::from("/var/log/warren")
    }
}

/// The daemon's socket: `$WARREN_HELPER_SOCKET`, else `/run/warren/helper.sock` on Linux,
/// `/var/run/warren/helper.sock` on macOS, the pipe `\\.\pipe\warren-helper` on Windows. Defined
/// in `warren-proto` ([`warren_proto::ipc::default_socket_path`]), shared with every client.
pub fn daemon_socket() -> PathBuf {
    warren_proto::ipc::default_socket_path()
}

/// Where a tunnel's UAPI socket `<ifname>.sock` goes, and where `wg` looks (Unix).
#[cfg(unix)]
pub const UAPI_SOCKET_DIR: &str = "/var/run/wireguard";

/// A tunnel's UAPI pipe is this prefix and the interface name, as wireguard-windows names it and
/// `wg.exe` looks for it (Windows).
#[cfg(windows)]
pub const UAPI_PIPE_PREFIX: &str = r"\\.\pipe\ProtectedPrefix\Administrators\WireGuard\";

/// The demo peer's UAPI directory (0700 root), bind-mounted at [`UAPI_SOCKET_DIR`] in the peer's
/// own mount namespace: the peer's socket must not sit in this machine's [`UAPI_SOCKET_DIR`],
/// where `wg show` would list an interface that is not in this namespace. Not inside the daemon's
/// `/run/warren`, whose owner and mode are the daemon's (and tmpfiles.d's) to choose.
#[cfg(target_os = "linux")]
pub const DEMO_PEER_UAPI_DIR: &str = "/run/warren-demo";

/// Where `ip netns` keeps its named network namespaces.
#[cfg(target_os = "linux")]
pub const NETNS_DIR: &str = "/var/run/netns";

/// The resolver configuration the `file` DNS method rewrites.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// systemd-resolved's runtime directory: present while it runs, and where its stub
/// `resolv.conf` files live.
#[cfg(target_os = "linux")]
pub const RESOLVED_RUN_DIR: &str = "/run/systemd/resolve";

/// resolvconf's interface order (which interfaces' resolvers come first).
#[cfg(target_os = "linux")]
pub const RESOLVCONF_INTERFACE_ORDER: &str = "/etc/resolvconf/interface-order";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dir_comes_from_the_environment_or_the_default() {
        // Read-only: the test runner may run tests in parallel, so the variable is not set here.
        match std::env::var_os(STATE_DIR_ENV) {
            Some(dir) if !dir.is_empty() => assert_eq!(state_dir(), PathBuf::from(dir)),
            _ if cfg!(windows) => assert!(state_dir().ends_with("Warren")),
            _ => assert_eq!(state_dir(), PathBuf::from(DEFAULT_STATE_DIR)),
        }
    }

    #[test]
    fn files_of_the_state_dir_are_inside_it() {
        let state = state_dir();
        for path in [dns_backup_dir(), demo_keys_file()] {
            assert_eq!(path.parent(), Some(state.as_path()), "{}", path.display());
        }
        if cfg!(windows) {
            assert!(system_tunnels_dir().starts_with(&state));
            assert!(log_dir().starts_with(&state));
        } else {
            assert_eq!(system_tunnels_dir(), PathBuf::from("/etc/warren/tunnels"));
            assert_eq!(log_dir(), PathBuf::from("/var/log/warren"));
        }
    }
}
