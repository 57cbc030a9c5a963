//! The `file` method while the tunnel is up: a watch on the resolv.conf Warren wrote, so that a
//! DHCP client (or anything else) rewriting it does not silently take the tunnel's DNS away.
//!
//! How it notices: inotify (no polling) on two things —
//! - the file's directory, for the usual way programs replace it (write a temp file, rename it
//!   over; `IN_MOVED_TO`, `IN_CREATE`, `IN_CLOSE_WRITE`, `IN_DELETE` naming the file);
//! - the file itself, for writers that truncate and write in place — the only way to change a
//!   bind-mounted resolv.conf (`ip netns exec`, containers), whose directory events go to the
//!   directory it is mounted from. The watch is added again after every look, since a rename
//!   puts another inode at the path.
//!
//! What it does: after the events stop for [`DEBOUNCE`] (DHCP clients write more than once), one
//! look through `file::reapply`: ours → nothing; someone else's → their content becomes the new
//! backup (saved and journaled before Warren writes again, see there) and the tunnel's file is
//! written again, with a warning in the log. On down, the journal restores that latest backup
//! byte for byte.
//!
//! Never fighting forever: more than [`MAX_REWRITES`] rewrites by others within [`WINDOW`], and it
//! stops with a warning that says the tunnel's DNS is no longer applied; the other program's file
//! then stays as it is, and down leaves it (it is not ours). An error (the file turned into a
//! directory, the journal cannot be written) stops it the same way.

use super::file::{self, Reapplied};
use super::{DnsChange, DnsPlan};
use crate::platform::Recorder;
use futures_util::StreamExt as _;
use inotify::{Inotify, WatchMask};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Quiet time after the last event before the file is looked at.
pub(super) const DEBOUNCE: Duration = Duration::from_millis(300);
/// How many rewrites by others are answered within [`WINDOW`] before giving up.
pub(super) const MAX_REWRITES: usize = 5;
/// The window [`MAX_REWRITES`] counts in.
pub(super) const WINDOW: Duration = Duration::from_secs(60);

/// Counts the rewrites answered in the last [`WINDOW`] (pure, so it is tested with chosen times).
#[derive(Debug)]
pub(super) struct RewriteBudget {
    max: usize,
    window: Duration,
    times: VecDeque<Instant>,
}

impl RewriteBudget {
    pub(super) fn new(max: usize, window: Duration) -> Self {
        RewriteBudget {
            max,
            window,
            times: VecDeque::new(),
        }
    }

    /// Counts one rewrite at `now`; false once more than `max` fall within the window.
    pub(super) fn allow(&mut self, now: Instant) -> bool {
        while let Some(&first) = self.times.front() {
            if now.duration_since(first) >= self.window {
                self.times.pop_front();
            } else {
                break;
            }
        }
        self.times.push_back(now);
        self.times.len() <= self.max
    }
}

/// Guards `journaled` (the [`DnsChange::ResolvConfFile`] that `apply` recorded for `plan`) until
/// the caller drops the future; returns only when it stops (see the module docs): with why the
/// tunnel's DNS is no longer in place when it is not, `None` when it merely cannot watch.
pub(super) async fn guard(
    plan: &DnsPlan,
    journaled: DnsChange,
    journal: &mut impl Recorder<DnsChange>,
) -> Option<String> {
    guard_with(
        plan,
        journaled,
        journal,
        RewriteBudget::new(MAX_REWRITES, WINDOW),
    )
    .await
}

pub(super) async fn guard_with(
    plan: &DnsPlan,
    mut journaled: DnsChange,
    journal: &mut impl Recorder<DnsChange>,
    mut budget: RewriteBudget,
) -> Option<String> {
    let DnsChange::ResolvConfFile { path, .. } = &journaled else {
        return None;
    };
    let path = path.clone();
    let shown = path.display().to_string();
    let (inotify, name) = match watch(&path) {
        Ok(watch) => watch,
        Err(err) => {
            tracing::warn!(
                "{}: cannot watch {shown} ({err}): if something rewrites it while the tunnel is \
                 up, the tunnel's DNS is not applied again",
                plan.ifname
            );
            return None;
        }
    };
    let mut events = match inotify.into_event_stream([0u8; 4096]) {
        Ok(events) => events,
        Err(err) => {
            tracing::warn!("{}: cannot watch {shown}: {err}", plan.ifname);
            return None;
        }
    };
    tracing::debug!("{}: watching {shown}", plan.ifname);
    let mut look_now = true;
    loop {
        if !look_now {
            // Wait for an event about the file, then for quiet.
            loop {
                match events.next().await {
                    Some(Ok(event))
                        if event.name.is_none()
                            || event.name.as_deref() == Some(name.as_os_str()) =>
                    {
                        break
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => {
                        tracing::warn!("{}: stopped watching {shown}: {err}", plan.ifname);
                        return None;
                    }
                    None => return None,
                }
            }
            while let Ok(Some(_)) = tokio::time::timeout(DEBOUNCE, events.next()).await {}
        }
        look_now = false;
        let outcome = file::reapply(plan, &mut journaled, journal, || {
            budget.allow(Instant::now())
        });
        // Follow the inode now at the path (a rename put a new one there).
        if let Err(err) = events.watches().add(&path, FILE_MASK) {
            tracing::debug!("cannot watch {shown} itself: {err}");
        }
        match outcome {
            Ok(Reapplied::Ours) => {}
            Ok(Reapplied::Repaired) => tracing::warn!(
                "{}: {shown} was altered; the tunnel's DNS is written again",
                plan.ifname
            ),
            Ok(Reapplied::Again) => look_now = true,
            Ok(Reapplied::Rewritten) => tracing::warn!(
                "{}: {shown} was rewritten by another program (a DHCP client?): its content is \
                 the new original, restored when the tunnel goes down; the tunnel's DNS is \
                 written again",
                plan.ifname
            ),
            Ok(Reapplied::LeftAlone) => {
                tracing::warn!(
                    "{}: {shown} was rewritten by another program more than {} times within {} s: \
                     giving up, not fighting it; the tunnel's DNS is NO LONGER APPLIED (its \
                     resolvers are not in {shown}); the other program's file stays when the \
                     tunnel goes down",
                    plan.ifname,
                    budget.max,
                    budget.window.as_secs()
                );
                return Some(format!(
                    "{shown} was rewritten by another program more than {} times within {} s; \
                     Warren stopped writing it again",
                    budget.max,
                    budget.window.as_secs()
                ));
            }
            Err(err) => {
                tracing::warn!(
                    "{}: stopped keeping the tunnel's DNS in {shown}: {err:#}",
                    plan.ifname
                );
                return Some(format!("cannot write {shown} again: {err:#}"));
            }
        }
    }
}

/// Events on the file itself.
const FILE_MASK: WatchMask = WatchMask::MODIFY
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF);

/// Events in its directory (filtered by the file's name).
const DIR_MASK: WatchMask = WatchMask::MOVED_TO
    .union(WatchMask::CREATE)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM);

/// An inotify instance watching `path` and its directory, and the file's name in it.
fn watch(path: &Path) -> std::io::Result<(Inotify, PathBuf)> {
    let inotify = Inotify::init()?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = PathBuf::from(path.file_name().unwrap_or_default());
    inotify.watches().add(dir, DIR_MASK)?;
    // The file may be missing for a moment; the directory watch covers that.
    let _ = inotify.watches().add(path, FILE_MASK);
    Ok((inotify, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::dns::OriginalResolvConf;
    use std::fs;

    use crate::platform::dns::file::tests::Root;

    /// Replaces the file as a DHCP client does: a temp file renamed over it.
    fn dhcp_rewrite(dir: &Root, bytes: &[u8]) {
        let temp = dir.path().join("etc/resolv.conf.dhcp-new");
        fs::write(&temp, bytes).unwrap();
        fs::rename(&temp, dir.resolv_conf()).unwrap();
    }

    fn is_ours(plan: &DnsPlan) -> bool {
        fs::read(&plan.resolv_conf).ok().as_deref() == Some(file::render(plan).as_bytes())
    }

    fn applied(plan: &DnsPlan) -> Vec<DnsChange> {
        let mut journal = Vec::new();
        file::apply(plan, &mut |c| {
            journal.push(c);
            Ok(())
        })
        .unwrap();
        journal
    }

    async fn until(what: &str, mut ok: impl FnMut() -> bool) {
        for _ in 0..100 {
            if ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not within 5 s: {what}");
    }

    #[tokio::test]
    async fn a_rename_over_the_file_is_answered_and_down_restores_the_newest_original() {
        let dir = Root::new();
        let plan = dir.plan();
        fs::write(&plan.resolv_conf, b"nameserver 198.18.2.1\n").unwrap();
        let mut journal = applied(&plan);
        let journaled = journal[0].clone();
        let foreign: &[u8] = b"# renewed lease\nnameserver 198.18.2.2\n";
        tokio::select! {
            gave_up = guard_with(&plan, journaled, &mut journal, RewriteBudget::new(5, WINDOW)) => {
                panic!("the guard gave up: {gave_up:?}")
            }
            () = async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                dhcp_rewrite(&dir, b"nameserver 198.18.2.99\n");
                dhcp_rewrite(&dir, foreign);
                until("the tunnel's file is back", || is_ours(&plan)).await;
            } => {}
        }
        let [DnsChange::ResolvConfFile {
            ifname,
            path,
            original: original @ OriginalResolvConf::File { backup, .. },
        }] = &journal[..]
        else {
            panic!("{journal:?}");
        };
        assert_eq!(fs::read(backup).unwrap(), foreign);
        file::undo(ifname, path, original).unwrap();
        assert_eq!(fs::read(&plan.resolv_conf).unwrap(), foreign);
    }

    #[tokio::test]
    async fn an_in_place_write_is_seen_too() {
        let dir = Root::new();
        let plan = dir.plan();
        let mut journal = applied(&plan);
        let journaled = journal[0].clone();
        tokio::select! {
            gave_up = guard_with(&plan, journaled, &mut journal, RewriteBudget::new(5, WINDOW)) => {
                panic!("the guard gave up: {gave_up:?}")
            }
            () = async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                fs::write(&plan.resolv_conf, b"nameserver 198.18.2.3\n").unwrap();
                until("the tunnel's file is back", || is_ours(&plan)).await;
            } => {}
        }
    }

    #[tokio::test]
    async fn it_stops_fighting_after_too_many_rewrites() {
        let dir = Root::new();
        let plan = dir.plan();
        let mut journal = applied(&plan);
        let journaled = journal[0].clone();
        let other = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            dhcp_rewrite(&dir, b"nameserver 198.18.2.4\n");
            until("the first rewrite is answered", || is_ours(&plan)).await;
            dhcp_rewrite(&dir, b"nameserver 198.18.2.5\n");
            std::future::pending::<()>().await;
        };
        let gave_up = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                why = guard_with(&plan, journaled, &mut journal, RewriteBudget::new(1, WINDOW)) => why,
                () = other => unreachable!(),
            }
        })
        .await
        .expect("the guard gives up on the second rewrite");
        let why = gave_up.expect("giving up says why the DNS is not applied");
        assert!(
            why.contains("rewritten by another program more than 1 times"),
            "{why}"
        );
        tokio::time::sleep(DEBOUNCE * 2).await;
        assert_eq!(
            fs::read(&plan.resolv_conf).unwrap(),
            b"nameserver 198.18.2.5\n"
        );
    }

    #[test]
    fn the_budget_counts_rewrites_within_the_window_only() {
        let start = Instant::now();
        let mut budget = RewriteBudget::new(2, Duration::from_secs(60));
        assert!(budget.allow(start));
        assert!(budget.allow(start + Duration::from_secs(1)));
        assert!(
            !budget.allow(start + Duration::from_secs(2)),
            "a third within a minute"
        );
        let mut budget = RewriteBudget::new(2, Duration::from_secs(60));
        assert!(budget.allow(start));
        assert!(budget.allow(start + Duration::from_secs(30)));
        assert!(
            budget.allow(start + Duration::from_secs(61)),
            "the first one left the window"
        );
    }
}
