//! Who may talk to the daemon, on Unix: root, and members of the helper's group (`warren`).
//!
//! The socket file is `0660 root:warren`, so the kernel already keeps others out of `connect`;
//! this check is the second lock, on every connection, from the peer's credentials as the kernel
//! reports them for the socket (`SO_PEERCRED` on Linux, `LOCAL_PEERCRED` on macOS, both behind
//! tokio's `peer_cred`). It matters when file permissions are not enough: a process that kept a
//! supplementary group after the user was removed from it, a socket mode changed by hand.
//!
//! A peer is admitted when its uid is 0, or its gid is the group's, or the user is a member of the
//! group *now* according to the group database: the group's member list, or the uid's groups from
//! `getgrouplist(3)` (which includes its primary group). [`decide`] is the pure rule; [`lookup`]
//! gathers the facts from the OS.

use std::ffi::{CStr, CString};

/// The facts about one connecting peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFacts {
    /// The peer's uid.
    pub uid: u32,
    /// The peer's (effective) gid.
    pub gid: u32,
    /// The user's name, when the uid has one.
    pub user: Option<String>,
    /// Every group the user belongs to by the group database (`getgrouplist`).
    pub user_groups: Vec<u32>,
}

/// The helper's group, from the group database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its name (`warren`).
    pub name: String,
    /// Its gid.
    pub gid: u32,
    /// Its explicit member list (`/etc/group`'s fourth field).
    pub members: Vec<String>,
}

/// Whether the peer is admitted, and if not, a sentence saying why (for the peer and the log).
pub fn decide(peer: &PeerFacts, group: Option<&Group>) -> Result<(), String> {
    if peer.uid == 0 {
        return Ok(());
    }
    let Some(group) = group else {
        return Err(format!(
            "uid {} is not root, and no group is allowed (the helper's group does not exist)",
            peer.uid
        ));
    };
    let member = peer.gid == group.gid
        || peer.user_groups.contains(&group.gid)
        || peer
            .user
            .as_ref()
            .is_some_and(|user| group.members.iter().any(|m| m == user));
    if member {
        Ok(())
    } else {
        Err(format!(
            "uid {}{} is not root and not a member of group '{}'",
            peer.uid,
            peer.user
                .as_ref()
                .map(|u| format!(" ({u})"))
                .unwrap_or_default(),
            group.name
        ))
    }
}

/// Runs a reentrant user/group database lookup (`getgrnam_r`, `getpwuid_r`) with a buffer that
/// doubles while the call answers `ERANGE`, up to 1 MiB. `call` gets the buffer and returns the
/// call's return code and what it read from the entry (`None`: no such entry), taken while the
/// buffer the entry points into is alive.
fn with_lookup_buffer<T>(
    mut call: impl FnMut(&mut [u8]) -> (libc::c_int, Option<T>),
) -> std::io::Result<Option<T>> {
    let mut buf = vec![0u8; 4096];
    loop {
        match call(&mut buf) {
            (libc::ERANGE, _) if buf.len() < (1 << 20) => buf.resize(buf.len() * 2, 0),
            (0, found) => return Ok(found),
            (rc, _) => return Err(std::io::Error::from_raw_os_error(rc)),
        }
    }
}

/// The group named `name`, or `None` if there is none.
pub fn group(name: &str) -> std::io::Result<Option<Group>> {
    let c_name = CString::new(name)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in group name"))?;
    with_lookup_buffer(|buf| {
        // SAFETY: an all-zero `group` is a valid value to be overwritten by getgrnam_r.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf's length is passed with it.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 || result.is_null() {
            return (rc, None);
        }
        let mut members = Vec::new();
        let mut member = entry.gr_mem;
        // SAFETY: gr_mem is a NULL-terminated array of C strings inside `buf`, valid while buf
        // lives and is not modified.
        unsafe {
            while !member.is_null() && !(*member).is_null() {
                members.push(CStr::from_ptr(*member).to_string_lossy().into_owned());
                member = member.add(1);
            }
        }
        let group = Group {
            name: name.to_owned(),
            gid: entry.gr_gid,
            members,
        };
        (0, Some(group))
    })
}

/// The uid and primary gid of the user named `name`, or `None` if there is none (for the Linux
/// demo's `--owner`).
#[cfg(target_os = "linux")]
pub fn user_by_name(name: &str) -> std::io::Result<Option<(u32, u32)>> {
    let c_name = CString::new(name)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in user name"))?;
    with_lookup_buffer(|buf| {
        // SAFETY: an all-zero `passwd` is a valid value to be overwritten by getpwnam_r.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf's length is passed with it.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 || result.is_null() {
            return (rc, None);
        }
        (0, Some((entry.pw_uid, entry.pw_gid)))
    })
}

/// The facts about peer `uid`/`gid` from the user and group databases.
pub fn lookup(uid: u32, gid: u32) -> PeerFacts {
    let (user, primary) = match user_of(uid) {
        Some((name, primary)) => (Some(name), primary),
        None => (None, gid),
    };
    let user_groups = user
        .as_deref()
        .map(|name| groups_of(name, primary))
        .unwrap_or_default();
    PeerFacts {
        uid,
        gid,
        user,
        user_groups,
    }
}

/// The user name and primary gid of `uid`.
fn user_of(uid: u32) -> Option<(String, u32)> {
    let found = with_lookup_buffer(|buf| {
        // SAFETY: an all-zero `passwd` is a valid value to be overwritten by getpwuid_r.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf's length is passed with it.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 || result.is_null() || entry.pw_name.is_null() {
            return (rc, None);
        }
        // SAFETY: pw_name points to a C string inside `buf`.
        let name = unsafe { CStr::from_ptr(entry.pw_name) }
            .to_string_lossy()
            .into_owned();
        (0, Some((name, entry.pw_gid)))
    });
    found.ok().flatten()
}

/// `getgrouplist(user, primary)`: every group of `user`.
fn groups_of(user: &str, primary: u32) -> Vec<u32> {
    let Ok(c_user) = CString::new(user) else {
        return Vec::new();
    };
    let mut count: libc::c_int = 64;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; usize::try_from(count).unwrap_or(64)];
        let mut n = count;
        // SAFETY: `groups` has room for `n` entries; getgrouplist writes at most that many and
        // sets `n` to the number it needs.
        #[cfg(target_os = "macos")]
        let rc = unsafe {
            libc::getgrouplist(
                c_user.as_ptr(),
                primary as libc::c_int,
                groups.as_mut_ptr().cast(),
                &mut n,
            )
        };
        // SAFETY: as above.
        #[cfg(not(target_os = "macos"))]
        let rc =
            unsafe { libc::getgrouplist(c_user.as_ptr(), primary, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(usize::try_from(n).unwrap_or(0));
            return groups;
        }
        if n <= count || count >= 65_536 {
            return Vec::new();
        }
        count = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warren() -> Group {
        Group {
            name: "warren".into(),
            gid: 990,
            members: vec!["alice".into()],
        }
    }

    fn peer(uid: u32, gid: u32, user: Option<&str>, groups: &[u32]) -> PeerFacts {
        PeerFacts {
            uid,
            gid,
            user: user.map(str::to_owned),
            user_groups: groups.to_vec(),
        }
    }

    #[test]
    fn root_and_members_are_admitted() {
        let g = warren();
        assert_eq!(decide(&peer(0, 0, Some("root"), &[0]), Some(&g)), Ok(()));
        assert_eq!(decide(&peer(0, 0, None, &[]), None), Ok(()));
        // By the member list, by getgrouplist, by the peer's gid.
        assert_eq!(
            decide(&peer(1000, 1000, Some("alice"), &[1000]), Some(&g)),
            Ok(())
        );
        assert_eq!(
            decide(&peer(1001, 1001, Some("bob"), &[1001, 990]), Some(&g)),
            Ok(())
        );
        assert_eq!(decide(&peer(1002, 990, None, &[]), Some(&g)), Ok(()));
    }

    #[test]
    fn others_are_refused_with_their_uid() {
        let g = warren();
        let refusal = decide(&peer(65534, 65534, Some("nobody"), &[65534]), Some(&g)).unwrap_err();
        assert_eq!(
            refusal,
            "uid 65534 (nobody) is not root and not a member of group 'warren'"
        );
        let refusal = decide(&peer(1000, 1000, Some("alice"), &[]), None).unwrap_err();
        assert!(refusal.contains("uid 1000"), "{refusal}");
    }

    #[test]
    fn the_databases_know_root() {
        let root = lookup(0, 0);
        assert_eq!(root.user.as_deref(), Some("root"));
        assert!(root.user_groups.contains(&0), "{root:?}");
        let root_group = group("root").unwrap().unwrap();
        assert_eq!(root_group.gid, 0);
        assert_eq!(group("no-such-group-warren-test").unwrap(), None);
    }
}
