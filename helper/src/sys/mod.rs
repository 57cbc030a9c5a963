//! The OS underneath, where it belongs to no concern of its own: small safe wrappers over OS
//! calls that several modules need (so that each `unsafe` block and its safety argument is
//! written once), where the helper's files live on each OS ([`paths`]), the one way a private
//! file is written ([`write_private_atomically`]), the OS's stop requests as one future
//! ([`shutdown`]), the lock around kernel settings that tunnels share ([`setting_lock`]),
//! logind's sleep signals on Linux (`logind`), the choice of the best default route outside a
//! tunnel ([`default_route`], pure), and the per-OS parts shared by several concerns
//! (`windows`: the IP Helper API, named-pipe security, the service).

mod atomic;
// Pure: compiled and tested everywhere, used on Windows (`windows::net`).
pub mod default_route;
#[cfg(target_os = "linux")]
pub mod logind;
pub mod paths;
// Pure: compiled and tested everywhere, used on Windows (`windows::acl`).
#[cfg_attr(not(windows), allow(dead_code))]
pub mod sddl;
pub mod setting_lock;
pub mod shutdown;
#[cfg(test)]
pub mod test_dir;
#[cfg(windows)]
pub mod windows;

#[cfg(target_os = "linux")] // The demo's.
pub use atomic::PrivateWrite;
pub use atomic::{sync_dir, write_private_atomically};

/// The effective user id of this process (Unix).
#[cfg(unix)]
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn euid_is_the_owner_of_what_this_process_creates() {
        use std::os::unix::fs::MetadataExt as _;
        let path = std::env::temp_dir().join(format!("warren-euid-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let owner = std::fs::metadata(&path).unwrap().uid();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(super::euid(), owner);
    }
}
