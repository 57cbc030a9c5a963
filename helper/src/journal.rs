//! The journal: a root-only state file per tunnel interface listing every change the helper made
//! to the system, written *before* each change is made, so that whatever happens to the process —
//! `down`, SIGTERM, or `kill -9` followed by the next start — exactly those changes can be undone.
//!
//! What it owns:
//! - the state directory it is given (normally `crate::sys::paths::state_dir`): created 0700,
//!   refused when another user owns it or others may write to it (a planted journal would make the
//!   helper "undo" whatever it says);
//! - per interface `<ifname>.journal`: JSON with the writer's pid, the boot id, the network namespace
//!   and the list of [`Change`]s, oldest first. Every update rewrites it atomically and durably
//!   ([`crate::sys::write_private_atomically`]: a 0600 temporary file fsynced, renamed, the
//!   directory fsynced), so a crash leaves the old list or the new one, never a torn file;
//! - per interface `<ifname>.lock`, locked (`flock`; `LockFileEx` on Windows) by the live
//!   [`Journal`] for as long as it exists.
//!   The kernel drops the lock when the process dies, however it dies, which is how a journal left
//!   by a crash ("leftover") is told from the journal of a tunnel that is still up: recovery never
//!   touches a locked one.
//!
//! The contract with the three concerns (`platform` network, `platform::dns`,
//! `platform::firewall`), whose changes and their undo the platform owns (`platform::change`:
//! [`Change`], [`Recorder`], [`platform::undo_change`]; the journal depends on the platform, never
//! the other way): each `apply` hands every change to a [`Recorder`] before making it, with
//! what its undo needs inside the change value; each concern's `undo(&change)` is idempotent. The
//! journal undoes newest first ([`Journal::undo_all`], through [`platform::undo_change`]), forgets
//! each change once undone, keeps the ones whose undo failed (for a later attempt), and
//! [`Journal::close`] deletes the file once nothing is left.
//!
//! Shared sysctls (`net.ipv4.conf.all.src_valid_mark`, which every full tunnel needs): the journals
//! in the directory are the reference count. A tunnel that finds the setting already set by
//! another tunnel journals it with that tunnel's original value (`platform::apply`, through
//! [`Journal::sysctl_held_elsewhere`]); undoing it ([`Journal::undo_all_with`]) keeps the value
//! while another journal of this boot and namespace still lists it, live or left by a crash, and
//! restores the original only for the last one. Both sides run under one lock,
//! `shared-sysctl-settings.lock` (`crate::sys::setting_lock`), because the daemon's `stop_all`
//! tears tunnels down concurrently. Recovery undoes through the same path, so the rule holds
//! there too.
//!
//! Recovery ([`recover`], run by `warren-helper up` for its interface before anything else, and by
//! `warren-helper recover` for all) loads the unlocked journals and undoes them, with two guards:
//! - a journal written in another network namespace on this boot is left alone — its changes live
//!   in that namespace (which may still exist), and undoing them here would hit this namespace's
//!   rules and sysctls instead;
//! - a journal written during an earlier boot: the kernel's routes, rules and sysctls did not
//!   survive the reboot, so its network changes count as undone without touching anything (undoing
//!   a sysctl would overwrite the value this boot set); the other concerns' changes are undone as
//!   usual (their undo knows what persists, such as a rewritten `/etc/resolv.conf`).
//!
//! What it must not do: make or undo changes itself (the concerns do), or trust a state directory
//! someone else can write.

use crate::platform::{self, Change, NetworkChange, Recorder, SysctlHolder};
use crate::sys::paths;
use crate::sys::setting_lock::SettingLock;
use crate::sys::{sync_dir, write_private_atomically};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

/// The journal file format written here; files of a later format are refused, not guessed at.
const FORMAT_VERSION: u32 = 1;

const JOURNAL_SUFFIX: &str = ".journal";
const LOCK_SUFFIX: &str = ".lock";

impl<C: Into<Change> + Clone> Recorder<C> for Journal {
    fn record(&mut self, change: C) -> io::Result<()> {
        Journal::record(self, change)
    }

    fn not_made(&mut self, change: &C) -> io::Result<()> {
        Journal::forget(self, &change.clone().into()).map(drop)
    }

    fn replace(&mut self, old: &C, new: C) -> io::Result<()> {
        Journal::replace(self, &old.clone().into(), new.into())
    }

    fn shared_setting_lock(&self) -> Option<PathBuf> {
        Some(paths::shared_sysctl_lock(&self.dir))
    }

    fn sysctl_held_elsewhere(&self, name: &str) -> Option<SysctlHolder> {
        Journal::sysctl_held_elsewhere(self, name)
    }
}

/// Why a journal could not be created, loaded or closed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The interface name cannot name a journal file.
    #[error(
        "invalid interface name {0:?} for a journal (1 to 15 characters, no '/', not . or ..)"
    )]
    InvalidName(String),
    /// The state directory cannot be created or is not safe to use.
    #[error("failed to prepare the state directory {}", dir.display())]
    StateDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        #[source]
        source: io::Error,
    },
    /// A live process holds the interface's journal.
    #[error(
        "interface {ifname} is in use by another running warren-helper (it holds {})",
        lock.display()
    )]
    InUse {
        /// The interface.
        ifname: String,
        /// The lock file it holds.
        lock: PathBuf,
    },
    /// A journal of a dead process is still there.
    #[error(
        "a journal left by an earlier warren-helper for {ifname} is still at {}: it must be \
         recovered first (warren-helper recover)",
        path.display()
    )]
    LeftOver {
        /// The interface.
        ifname: String,
        /// The journal.
        path: PathBuf,
    },
    /// The journal was written in another network namespace during this boot.
    #[error(
        "the journal {} of {ifname} was written in network namespace {netns}, not this one \
         ({here}); its changes are there: run `warren-helper recover` inside that namespace (or \
         delete the file if that namespace no longer exists)",
        path.display()
    )]
    OtherNamespace {
        /// The interface.
        ifname: String,
        /// The journal.
        path: PathBuf,
        /// Where it was written, e.g. `net:[4026532281]`.
        netns: String,
        /// This process's namespace.
        here: String,
    },
    /// The journal cannot be read.
    #[error("failed to read journal {}", path.display())]
    Read {
        /// The journal.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The journal is not what this helper writes.
    #[error("failed to parse journal {}: {message}", path.display())]
    Parse {
        /// The journal.
        path: PathBuf,
        /// What is wrong, with the line and column.
        message: String,
    },
    /// The journal was written by a newer helper.
    #[error(
        "journal {} has format {version}, written by a newer warren-helper (this one reads \
         format {FORMAT_VERSION})",
        path.display()
    )]
    Version {
        /// The journal.
        path: PathBuf,
        /// Its format version.
        version: u32,
    },
    /// Writing or removing the journal failed.
    #[error("failed to write journal {}", path.display())]
    Write {
        /// The journal.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// [`Journal::close`] with changes still listed.
    #[error(
        "journal {} still lists {count} change(s) that could not be undone; it is kept for the \
         next recovery (warren-helper recover)",
        path.display()
    )]
    NotEmpty {
        /// The journal.
        path: PathBuf,
        /// How many changes are left.
        count: usize,
    },
}

/// The file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Contents {
    version: u32,
    ifname: String,
    /// The process that wrote it.
    pid: u32,
    /// `/proc/sys/kernel/random/boot_id` when it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot_id: Option<String>,
    /// The writer's network namespace, e.g. `net:[4026531840]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netns: Option<String>,
    /// Oldest first.
    changes: Vec<Change>,
}

/// The journal of one tunnel interface, locked while this value lives.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    path: PathBuf,
    contents: Contents,
    lock: Lock,
    /// Written during an earlier boot: its network changes did not survive the reboot.
    earlier_boot: bool,
}

/// What [`Journal::undo_all`] did.
#[derive(Debug, Default)]
pub struct UndoOutcome {
    /// Undone (or found already undone), newest first; forgotten by the journal.
    pub undone: Vec<Change>,
    /// Could not be undone, newest first, with the error; still in the journal.
    pub failed: Vec<(Change, String)>,
}

impl UndoOutcome {
    /// True when nothing failed.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Takes the lock that says "a live process owns `ifname`'s journal"; `InUse` when another
/// process holds it.
fn lock_interface(dir: &Path, ifname: &str) -> Result<Lock, JournalError> {
    let lock_path = dir.join(format!("{ifname}{LOCK_SUFFIX}"));
    Lock::acquire(&lock_path)
        .map_err(|source| JournalError::Write {
            path: lock_path.clone(),
            source,
        })?
        .ok_or_else(|| JournalError::InUse {
            ifname: ifname.to_owned(),
            lock: lock_path.clone(),
        })
}

impl Journal {
    /// Creates the journal of `ifname` in `dir` (made 0700 if missing) and locks it. Refuses while
    /// another process holds it ([`JournalError::InUse`]) and while a leftover journal is there
    /// ([`JournalError::LeftOver`]: recovery must run first).
    pub fn create(dir: &Path, ifname: &str) -> Result<Journal, JournalError> {
        check_ifname(ifname)?;
        prepare_dir(dir).map_err(|source| JournalError::StateDir {
            dir: dir.to_owned(),
            source,
        })?;
        let lock = lock_interface(dir, ifname)?;
        let path = journal_path(dir, ifname);
        if exists(&path).map_err(|source| JournalError::Read {
            path: path.clone(),
            source,
        })? {
            return Err(JournalError::LeftOver {
                ifname: ifname.to_owned(),
                path,
            });
        }
        let journal = Journal {
            dir: dir.to_owned(),
            path,
            contents: Contents {
                version: FORMAT_VERSION,
                ifname: ifname.to_owned(),
                pid: std::process::id(),
                boot_id: boot_id(),
                netns: netns_id(),
                changes: Vec::new(),
            },
            lock,
            earlier_boot: false,
        };
        journal.save().map_err(|source| JournalError::Write {
            path: journal.path.clone(),
            source,
        })?;
        Ok(journal)
    }

    /// Loads and locks the leftover journal of `ifname` in `dir`, if there is one. Fails when a
    /// live process holds it, when it was written in another network namespace during this boot,
    /// and when it cannot be read.
    pub fn leftover(dir: &Path, ifname: &str) -> Result<Option<Journal>, JournalError> {
        check_ifname(ifname)?;
        let path = journal_path(dir, ifname);
        let read_error = |source| JournalError::Read {
            path: path.clone(),
            source,
        };
        if !exists(&path).map_err(read_error)? {
            return Ok(None);
        }
        check_dir(dir).map_err(|source| JournalError::StateDir {
            dir: dir.to_owned(),
            source,
        })?;
        let lock = lock_interface(dir, ifname)?;
        // Its owner may have closed it between the check and the lock.
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(read_error(err)),
        };
        let contents = parse(&path, &bytes)?;
        if contents.ifname != ifname {
            return Err(JournalError::Parse {
                path,
                message: format!(
                    "it is the journal of {:?}, not of {ifname:?}",
                    contents.ifname
                ),
            });
        }
        let earlier_boot = differ(&contents.boot_id, &boot_id());
        if !earlier_boot {
            if let (Some(netns), Some(here)) = (&contents.netns, netns_id()) {
                if *netns != here {
                    return Err(JournalError::OtherNamespace {
                        ifname: ifname.to_owned(),
                        path,
                        netns: netns.clone(),
                        here,
                    });
                }
            }
        }
        Ok(Some(Journal {
            dir: dir.to_owned(),
            path,
            contents,
            lock,
            earlier_boot,
        }))
    }

    /// Every leftover journal in `dir`, by interface name: each one loaded and locked, or the
    /// reason it cannot be (see [`Journal::leftover`]). Empty when `dir` does not exist.
    pub fn leftovers(dir: &Path) -> Result<Vec<Result<Journal, JournalError>>, JournalError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(JournalError::Read {
                    path: dir.to_owned(),
                    source,
                })
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| JournalError::Read {
                path: dir.to_owned(),
                source,
            })?;
            let name = entry.file_name();
            if let Some(ifname) = name.to_str().and_then(|n| n.strip_suffix(JOURNAL_SUFFIX)) {
                names.push(ifname.to_owned());
            }
        }
        names.sort();
        Ok(names
            .iter()
            .filter_map(|ifname| Journal::leftover(dir, ifname).transpose())
            .collect())
    }

    /// Journals `change` (appends it and rewrites the file atomically). On error nothing is
    /// recorded, and the change must not be made.
    pub fn record(&mut self, change: impl Into<Change>) -> io::Result<()> {
        self.contents.changes.push(change.into());
        let saved = self.save();
        if saved.is_err() {
            self.contents.changes.pop();
        }
        saved
    }

    /// Forgets the newest entry equal to `change` (after it was undone, or when it was not made).
    /// Returns whether there was one. The entry is gone from memory even if rewriting the file
    /// fails (the error says so); undoing it again after a crash would be harmless.
    pub fn forget(&mut self, change: &Change) -> io::Result<bool> {
        let Some(i) = self.contents.changes.iter().rposition(|c| c == change) else {
            return Ok(false);
        };
        self.contents.changes.remove(i);
        self.save().map(|()| true)
    }

    /// Replaces the newest entry equal to `old` by `new` in one atomic rewrite (appends `new` when
    /// `old` is not listed). On error the journal is as it was.
    // Only Linux's `file` DNS method re-makes a change while the tunnel is up.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn replace(&mut self, old: &Change, new: Change) -> io::Result<()> {
        let before = self.contents.changes.clone();
        match self.contents.changes.iter().rposition(|c| c == old) {
            Some(i) => self.contents.changes[i] = new,
            None => self.contents.changes.push(new),
        }
        let saved = self.save();
        if saved.is_err() {
            self.contents.changes = before;
        }
        saved
    }

    /// Forgets the newest entry, like [`Journal::forget`].
    #[allow(dead_code)] // Part of the journal contract; `up` forgets through `undo_all`.
    pub fn forget_last(&mut self) -> io::Result<Option<Change>> {
        let Some(last) = self.contents.changes.pop() else {
            return Ok(None);
        };
        self.save().map(|()| Some(last))
    }

    /// The changes journaled and not yet undone, oldest first.
    pub fn changes(&self) -> &[Change] {
        &self.contents.changes
    }

    /// The interface this journal is for.
    pub fn ifname(&self) -> &str {
        &self.contents.ifname
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The process that wrote it (this one, for a journal it created).
    pub fn pid(&self) -> u32 {
        self.contents.pid
    }

    /// True for a leftover written during an earlier boot.
    pub fn is_from_earlier_boot(&self) -> bool {
        self.earlier_boot
    }

    /// Another journal in this one's directory — written during this boot, in this network
    /// namespace (sysctls are per namespace), live or left by a crash (its changes are still in
    /// place until it is recovered) — that lists a `SysctlSet` of `name`: its interface and the
    /// `previous` it journaled. Journals that cannot be read are skipped with a warning.
    pub fn sysctl_held_elsewhere(&self, name: &str) -> Option<SysctlHolder> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::warn!(
                    "failed to list {} for the other tunnels' sysctls: {err}",
                    self.dir.display()
                );
                return None;
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(JOURNAL_SUFFIX)
                    .map(str::to_owned)
            })
            .filter(|ifname| *ifname != self.contents.ifname)
            .collect();
        names.sort();
        let (boot, netns) = (boot_id(), netns_id());
        for ifname in names {
            let path = journal_path(&self.dir, &ifname);
            let contents = match fs::read(&path) {
                Ok(bytes) => match parse(&path, &bytes) {
                    Ok(contents) => contents,
                    Err(err) => {
                        tracing::warn!("{err} (looking for the other tunnels' sysctls)");
                        continue;
                    }
                },
                // Closed meanwhile.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => {
                    tracing::warn!(
                        "failed to read {} (looking for the other tunnels' sysctls): {err}",
                        path.display()
                    );
                    continue;
                }
            };
            if differ(&contents.boot_id, &boot) || differ(&contents.netns, &netns) {
                continue;
            }
            let previous = contents.changes.iter().find_map(|change| match change {
                Change::Network(NetworkChange::SysctlSet {
                    name: held,
                    previous,
                    ..
                }) if held == name => Some(previous.clone()),
                _ => None,
            });
            if let Some(previous) = previous {
                return Some(SysctlHolder {
                    ifname: contents.ifname,
                    previous,
                });
            }
        }
        None
    }

    /// Undoes every change, newest first, through [`platform::undo_change`]; see
    /// [`Journal::undo_all_with`].
    pub async fn undo_all(&mut self) -> UndoOutcome {
        self.undo_all_with(|change| async move { platform::undo_change(&change).await })
            .await
    }

    /// Undoes every change with `undo`, newest first, continuing past failures: each change
    /// undone is forgotten (and the file rewritten), each failure is logged and kept. A network
    /// change of a journal from an earlier boot counts as undone without calling `undo`. A
    /// `SysctlSet` that another journal still holds ([`Journal::sysctl_held_elsewhere`]) counts
    /// as undone without calling `undo` either: the value stays for that tunnel, which restores
    /// the original when it goes; that check, the undo and forgetting the change happen under
    /// the shared-setting lock.
    pub async fn undo_all_with<F, Fut>(&mut self, mut undo: F) -> UndoOutcome
    where
        F: FnMut(Change) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let mut outcome = UndoOutcome::default();
        let mut i = self.contents.changes.len();
        while i > 0 {
            i -= 1;
            let change = self.contents.changes[i].clone();
            // A shared sysctl: the check of the other journals, the undo and the rewrite of this
            // one are a single step for the other tunnels (the lock is dropped after `save`).
            let mut _shared_lock = None;
            let result = if self.earlier_boot && matches!(change, Change::Network(_)) {
                tracing::debug!("{change}: gone with the reboot");
                Ok(())
            } else if let Change::Network(NetworkChange::SysctlSet { name, value, .. }) = &change {
                match SettingLock::acquire(&paths::shared_sysctl_lock(&self.dir)).await {
                    Err(err) => Err(anyhow::anyhow!("failed to restore {change}: {err}")),
                    Ok(lock) => {
                        _shared_lock = Some(lock);
                        match self.sysctl_held_elsewhere(name) {
                            Some(holder) => {
                                tracing::info!(
                                    "{}: sysctl {name} stays {value}: {} still needs it (and \
                                     restores it when it goes)",
                                    self.contents.ifname,
                                    holder.ifname
                                );
                                Ok(())
                            }
                            None => undo(change.clone()).await,
                        }
                    }
                }
            } else {
                undo(change.clone()).await
            };
            match result {
                Ok(()) => {
                    self.contents.changes.remove(i);
                    if let Err(err) = self.save() {
                        tracing::warn!(
                            "{err} (after undoing {change}, which may be undone again later: \
                             harmless)"
                        );
                    }
                    outcome.undone.push(change);
                }
                Err(err) => {
                    let message = format!("{err:#}");
                    tracing::warn!("{message}");
                    outcome.failed.push((change, message));
                }
            }
        }
        outcome
    }

    /// Deletes the journal, which must be empty, and releases the lock. With changes left, the
    /// file is kept for the next recovery and the lock released, and the error says how many.
    pub fn close(self) -> Result<(), JournalError> {
        if !self.contents.changes.is_empty() {
            return Err(JournalError::NotEmpty {
                path: self.path,
                count: self.contents.changes.len(),
            });
        }
        let removed = remove_if_exists(&self.path).and_then(|()| sync_dir(&self.dir));
        removed.map_err(|source| JournalError::Write {
            path: self.path.clone(),
            source,
        })?;
        self.lock.release();
        Ok(())
    }

    /// Rewrites the file atomically from `self.contents`.
    fn save(&self) -> io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(&self.contents).map_err(io::Error::other)?;
        bytes.push(b'\n');
        write_private_atomically(&self.path, &bytes).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("failed to write journal {}: {err}", self.path.display()),
            )
        })
    }
}

/// What recovering one leftover journal came to.
#[derive(Debug)]
pub enum Recovery {
    /// Every change undone; the journal is gone.
    Restored {
        /// The interface.
        ifname: String,
        /// The process that had written it.
        pid: u32,
        /// The changes undone, newest first.
        undone: Vec<Change>,
    },
    /// Some changes could not be undone; the journal keeps them for another attempt.
    Incomplete {
        /// The interface.
        ifname: String,
        /// The journal.
        path: PathBuf,
        /// The changes undone, newest first.
        undone: Vec<Change>,
        /// The changes not undone, with the errors.
        failed: Vec<(Change, String)>,
    },
    /// Not touched: a running helper holds it, or it belongs to another network namespace.
    LeftAlone(JournalError),
    /// It cannot be read; nothing was undone.
    Failed(JournalError),
}

impl Recovery {
    /// Whether this journal is still there with something in it not undone, or unreadable.
    pub fn is_failure(&self) -> bool {
        matches!(self, Recovery::Incomplete { .. } | Recovery::Failed(_))
    }

    /// One line per change, newest first: `undone: <change>`, then `NOT undone: <change>: <why>`.
    pub fn details(&self) -> Vec<String> {
        let (undone, failed): (&[Change], &[(Change, String)]) = match self {
            Recovery::Restored { undone, .. } => (undone, &[]),
            Recovery::Incomplete { undone, failed, .. } => (undone, failed),
            Recovery::LeftAlone(_) | Recovery::Failed(_) => (&[], &[]),
        };
        undone
            .iter()
            .map(|change| format!("undone: {change}"))
            .chain(
                failed
                    .iter()
                    .map(|(change, error)| format!("NOT undone: {change}: {error}")),
            )
            .collect()
    }
}

impl fmt::Display for Recovery {
    /// The one-line headline that `recover`, the daemon's start and `up` all print; the changes
    /// are in [`Recovery::details`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recovery::Restored {
                ifname,
                pid,
                undone,
            } => write!(
                f,
                "{ifname}: restored: warren-helper pid {pid} did not finish (it crashed or was \
                 killed); the {} change(s) it left are undone or already gone",
                undone.len()
            ),
            Recovery::Incomplete {
                ifname,
                path,
                undone,
                failed,
            } => write!(
                f,
                "{ifname}: INCOMPLETE: {} change(s) undone, {} not (kept in {})",
                undone.len(),
                failed.len(),
                path.display()
            ),
            Recovery::LeftAlone(reason) => write!(f, "left alone: {reason}"),
            Recovery::Failed(error) => {
                write!(f, "FAILED: {}", crate::logging::one_line(error))
            }
        }
    }
}

/// Undoes the leftover journals in `dir` — only that of `only` when given — and reports what each
/// came to (nothing at all when there are none).
pub async fn recover(dir: &Path, only: Option<&str>) -> Result<Vec<Recovery>, JournalError> {
    let leftovers = match only {
        Some(ifname) => match Journal::leftover(dir, ifname) {
            Ok(None) => Vec::new(),
            Ok(Some(journal)) => vec![Ok(journal)],
            Err(err) => vec![Err(err)],
        },
        None => Journal::leftovers(dir)?,
    };
    let mut reports = Vec::new();
    for leftover in leftovers {
        let mut journal = match leftover {
            Ok(journal) => journal,
            Err(err @ (JournalError::InUse { .. } | JournalError::OtherNamespace { .. })) => {
                reports.push(Recovery::LeftAlone(err));
                continue;
            }
            Err(err) => {
                reports.push(Recovery::Failed(err));
                continue;
            }
        };
        tracing::info!(
            "recovering {}: undoing {} change(s) left by warren-helper pid {}{}",
            journal.ifname(),
            journal.changes().len(),
            journal.pid(),
            if journal.is_from_earlier_boot() {
                " during an earlier boot"
            } else {
                ""
            }
        );
        let outcome = journal.undo_all().await;
        for change in &outcome.undone {
            tracing::debug!("{}: undone: {change}", journal.ifname());
        }
        let ifname = journal.ifname().to_owned();
        let pid = journal.pid();
        let path = journal.path().to_owned();
        match journal.close() {
            Ok(()) => reports.push(Recovery::Restored {
                ifname,
                pid,
                undone: outcome.undone,
            }),
            Err(JournalError::NotEmpty { .. }) => reports.push(Recovery::Incomplete {
                ifname,
                path,
                undone: outcome.undone,
                failed: outcome.failed,
            }),
            Err(err) => reports.push(Recovery::Failed(err)),
        }
    }
    Ok(reports)
}

/// `<dir>/<ifname>.journal`.
fn journal_path(dir: &Path, ifname: &str) -> PathBuf {
    dir.join(format!("{ifname}{JOURNAL_SUFFIX}"))
}

/// Interface names as Linux takes them (`dev_valid_name`), which also makes them safe file names.
fn check_ifname(ifname: &str) -> Result<(), JournalError> {
    let valid = !ifname.is_empty()
        && ifname.len() <= 15
        && ifname != "."
        && ifname != ".."
        && !ifname
            .chars()
            .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace());
    if valid {
        Ok(())
    } else {
        Err(JournalError::InvalidName(ifname.to_owned()))
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Contents, JournalError> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let parse_error = |err: serde_json::Error| JournalError::Parse {
        path: path.to_owned(),
        message: err.to_string(),
    };
    let Version { version } = serde_json::from_slice(bytes).map_err(parse_error)?;
    if version > FORMAT_VERSION {
        return Err(JournalError::Version {
            path: path.to_owned(),
            version,
        });
    }
    serde_json::from_slice(bytes).map_err(parse_error)
}

/// True when both are known and differ.
fn differ(a: &Option<String>, b: &Option<String>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a != b)
}

fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Creates `dir` (0700, parents included) if missing, tightens it to 0700, and checks it.
#[cfg(unix)]
fn prepare_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = fs::metadata(dir)?;
    if meta.is_dir() && owned_by_us(&meta) && meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    check_dir(dir)
}

#[cfg(not(unix))]
fn prepare_dir(dir: &Path) -> io::Result<()> {
    #[cfg(windows)]
    crate::sys::windows::acl::harden_dir(dir)?;
    #[cfg(not(windows))]
    fs::create_dir_all(dir)?;
    check_dir(dir)
}

/// Refuses a state directory that is not a directory, not ours, or writable by others.
#[cfg(unix)]
fn check_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let meta = fs::metadata(dir)?;
    let problem = if !meta.is_dir() {
        Some("it is not a directory".to_owned())
    } else if !owned_by_us(&meta) {
        Some(format!(
            "it belongs to uid {}, not to this process's uid",
            meta.uid()
        ))
    } else if meta.permissions().mode() & 0o022 != 0 {
        Some(format!(
            "others may write to it (mode {:o})",
            meta.permissions().mode() & 0o7777
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(io::Error::new(io::ErrorKind::PermissionDenied, problem)),
        None => Ok(()),
    }
}

#[cfg(not(unix))]
fn check_dir(dir: &Path) -> io::Result<()> {
    if !fs::metadata(dir)?.is_dir() {
        return Err(io::Error::other("it is not a directory"));
    }
    #[cfg(windows)]
    crate::sys::windows::acl::check_admin_only(dir)
        .map_err(|why| io::Error::new(io::ErrorKind::PermissionDenied, why))?;
    Ok(())
}

#[cfg(unix)]
fn owned_by_us(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    meta.uid() == crate::sys::euid()
}

/// This boot's id, on Linux.
fn boot_id() -> Option<String> {
    if cfg!(target_os = "linux") {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| id.trim().to_owned())
    } else {
        None
    }
}

/// The calling thread's network namespace, e.g. `net:[4026531840]`, on Linux.
fn netns_id() -> Option<String> {
    if cfg!(target_os = "linux") {
        fs::read_link("/proc/thread-self/ns/net")
            .ok()
            .map(|link| link.to_string_lossy().into_owned())
    } else {
        None
    }
}

/// An exclusive lock (`flock`, `LockFileEx`) on `<ifname>.lock`, held until this value is dropped (or the process
/// dies). [`Lock::release`] also removes the file.
#[derive(Debug)]
struct Lock {
    path: PathBuf,
    _file: File,
}

impl Lock {
    /// Takes the lock, or `None` when another process (or another `Lock` here) holds it.
    #[cfg(unix)]
    fn acquire(path: &Path) -> io::Result<Option<Lock>> {
        use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
        use std::os::unix::io::AsRawFd as _;
        // A released lock file is removed; whoever opened it just before then holds a lock on a
        // file no longer at `path` and must start again. Bounded, though it settles at once.
        for _ in 0..100 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)?;
            // SAFETY: flock(2) on a descriptor this function owns; no pointers.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                let err = io::Error::last_os_error();
                return if err.kind() == io::ErrorKind::WouldBlock {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
            let held = file.metadata()?;
            match fs::metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(Lock {
                        path: path.to_owned(),
                        _file: file,
                    }))
                }
                _ => continue,
            }
        }
        Err(io::Error::other(
            "the lock file keeps being replaced while locking it",
        ))
    }

    /// Takes the lock with `LockFileEx` (exclusive, failing at once), or `None` when another
    /// handle — of another process, or another `Lock` here — holds it. Windows drops the lock
    /// when the handle closes, however the process ends, as the kernel does with `flock`.
    #[cfg(windows)]
    fn acquire(path: &Path) -> io::Result<Option<Lock>> {
        use std::os::windows::io::AsRawHandle as _;
        use windows_sys::Win32::Foundation::ERROR_LOCK_VIOLATION;
        use windows_sys::Win32::Storage::FileSystem::{
            LockFileEx, LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY,
        };
        use windows_sys::Win32::System::IO::OVERLAPPED;
        // As on Unix: a released lock file is removed, so whoever opened it just before then
        // holds a lock on a file no longer at `path` and must start again.
        for _ in 0..100 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            // SAFETY: an all-zero OVERLAPPED is valid (offset 0, no event).
            let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
            // SAFETY: the handle is this function's open file; `overlapped` outlives the call,
            // which is synchronous (the file was not opened for overlapped I/O).
            let locked = unsafe {
                LockFileEx(
                    file.as_raw_handle(),
                    LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY,
                    0,
                    u32::MAX,
                    u32::MAX,
                    &mut overlapped,
                )
            };
            if locked == 0 {
                let err = io::Error::last_os_error();
                return if err.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
            let same = match OpenOptions::new().read(true).open(path) {
                Ok(now) => file_id(&now)? == file_id(&file)?,
                // Gone, or pending deletion (access denied until its last handle closes).
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                    ) =>
                {
                    false
                }
                Err(err) => return Err(err),
            };
            if same {
                return Ok(Some(Lock {
                    path: path.to_owned(),
                    _file: file,
                }));
            }
        }
        Err(io::Error::other(
            "the lock file keeps being replaced while locking it",
        ))
    }

    /// An OS without `flock` or `LockFileEx`: refused, since a journal two processes write at
    /// once would undo each other's changes.
    #[cfg(not(any(unix, windows)))]
    fn acquire(_path: &Path) -> io::Result<Option<Lock>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "locking a journal is not supported on {}",
                std::env::consts::OS
            ),
        ))
    }

    /// Removes the lock file while still holding the lock, then releases it.
    fn release(self) {
        if let Err(err) = remove_if_exists(&self.path) {
            tracing::debug!("failed to remove {}: {err}", self.path.display());
        }
    }
}

/// The volume and file index of an open file: what tells two paths' files apart (Windows).
#[cfg(windows)]
fn file_id(file: &File) -> io::Result<(u32, u32, u32)> {
    use std::os::windows::io::AsRawHandle as _;
    use windows_sys::Win32::Storage::FileSystem::{
        GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION,
    };
    // SAFETY: all-zero is a valid BY_HANDLE_FILE_INFORMATION (plain integers).
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is an open file of the caller's; `info` is a valid out pointer.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((
        info.dwVolumeSerialNumber,
        info.nFileIndexHigh,
        info.nFileIndexLow,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{Family, Link, NetworkChange, PolicyRule, MAIN_TABLE, SRC_VALID_MARK};
    use std::cell::RefCell;

    use crate::sys::test_dir::TempDir;

    /// The state directory inside `dir` (created by the journal).
    fn state(dir: &TempDir) -> PathBuf {
        dir.0.join("state")
    }

    fn route(n: u32) -> Change {
        Change::Network(NetworkChange::RouteAdded {
            link: Link {
                name: "wg0".into(),
                index: 7,
            },
            route: format!("198.18.{n}.0/24").parse().unwrap(),
            table: MAIN_TABLE,
        })
    }

    fn rule() -> Change {
        Change::Network(NetworkChange::RuleAdded {
            rule: PolicyRule::SuppressMainDefault {
                family: Family::Ipv4,
            },
        })
    }

    fn sysctl() -> Change {
        Change::Network(NetworkChange::SysctlSet {
            name: SRC_VALID_MARK.into(),
            value: "1".into(),
            previous: "0".into(),
        })
    }

    #[test]
    fn a_recovery_reads_the_same_wherever_it_is_reported() {
        let restored = Recovery::Restored {
            ifname: "wg0".into(),
            pid: 4242,
            undone: vec![rule(), route(1)],
        };
        assert_eq!(
            restored.to_string(),
            "wg0: restored: warren-helper pid 4242 did not finish (it crashed or was killed); \
             the 2 change(s) it left are undone or already gone"
        );
        assert!(!restored.is_failure());
        assert_eq!(
            restored.details(),
            [
                format!("undone: {}", rule()),
                format!("undone: {}", route(1))
            ]
        );
        let incomplete = Recovery::Incomplete {
            ifname: "wg0".into(),
            path: PathBuf::from("/var/lib/warren/wg0.journal"),
            undone: vec![rule()],
            failed: vec![(sysctl(), "permission denied".into())],
        };
        assert!(incomplete.is_failure());
        assert_eq!(
            incomplete.to_string(),
            "wg0: INCOMPLETE: 1 change(s) undone, 1 not (kept in /var/lib/warren/wg0.journal)"
        );
        assert_eq!(
            incomplete.details().last().unwrap(),
            &format!("NOT undone: {}: permission denied", sysctl())
        );
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn on_disk(path: &Path) -> Contents {
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    /// What a process that died would leave: the journal file, its lock released.
    fn crash(journal: Journal) {
        drop(journal);
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn records_are_written_atomically_to_a_private_file() {
        let tmp = TempDir::new("journal");
        let mut journal = Journal::create(&state(&tmp), "wg0").unwrap();
        assert_eq!(journal.path(), state(&tmp).join("wg0.journal"));
        journal.record(route(1)).unwrap();
        journal.record(sysctl()).unwrap();

        let contents = on_disk(journal.path());
        assert_eq!(contents.version, FORMAT_VERSION);
        assert_eq!(contents.ifname, "wg0");
        assert_eq!(contents.pid, std::process::id());
        assert_eq!(contents.changes, [route(1), sysctl()]);
        assert_eq!(contents.boot_id, boot_id());
        assert_eq!(contents.netns, netns_id());
        // No temporary file is left behind.
        let mut names: Vec<String> = fs::read_dir(state(&tmp))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["wg0.journal", "wg0.lock"]);
        #[cfg(unix)]
        {
            assert_eq!(mode(&state(&tmp)), 0o700);
            assert_eq!(mode(journal.path()), 0o600);
            assert_eq!(mode(&state(&tmp).join("wg0.lock")), 0o600);
        }

        assert_eq!(journal.forget_last().unwrap(), Some(sysctl()));
        assert!(journal.forget(&route(1)).unwrap());
        assert!(!journal.forget(&route(1)).unwrap());
        assert!(on_disk(journal.path()).changes.is_empty());
        journal.close().unwrap();
        assert_eq!(fs::read_dir(state(&tmp)).unwrap().count(), 0);
    }

    #[test]
    fn two_locks_on_the_same_journal_conflict_until_the_first_is_released() {
        // Run on every OS (flock on Unix, LockFileEx on Windows).
        let tmp = TempDir::new("journal");
        prepare_dir(&state(&tmp)).unwrap();
        let path = state(&tmp).join("wg0.lock");
        let first = Lock::acquire(&path)
            .unwrap()
            .expect("the first lock is free");
        assert!(
            Lock::acquire(&path).unwrap().is_none(),
            "a second lock on a held journal must fail"
        );
        let other = Lock::acquire(&state(&tmp).join("wg1.lock")).unwrap();
        assert!(other.is_some(), "another interface is independent");
        first.release();
        assert!(!path.exists(), "a released lock's file is removed");
        let again = Lock::acquire(&path).unwrap();
        assert!(again.is_some(), "released, it is free again");
    }

    #[test]
    fn a_loose_state_dir_is_tightened_and_a_foreign_file_refused() {
        let tmp = TempDir::new("journal");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::create_dir_all(state(&tmp)).unwrap();
            fs::set_permissions(state(&tmp), fs::Permissions::from_mode(0o755)).unwrap();
            Journal::create(&state(&tmp), "wg0")
                .unwrap()
                .close()
                .unwrap();
            assert_eq!(mode(&state(&tmp)), 0o700);
        }
        fs::create_dir_all(&tmp.0).unwrap();
        let file = tmp.0.join("file");
        fs::write(&file, "").unwrap();
        let err = Journal::create(&file, "wg0").unwrap_err();
        assert!(matches!(err, JournalError::StateDir { .. }), "{err:?}");
    }

    #[test]
    fn create_refuses_while_held_and_while_a_leftover_is_there() {
        let tmp = TempDir::new("journal");
        let mut journal = Journal::create(&state(&tmp), "wg0").unwrap();
        journal.record(route(1)).unwrap();
        let err = Journal::create(&state(&tmp), "wg0").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "interface wg0 is in use by another running warren-helper (it holds {})",
                state(&tmp).join("wg0.lock").display()
            )
        );
        // Another interface is independent.
        Journal::create(&state(&tmp), "wg1")
            .unwrap()
            .close()
            .unwrap();
        // A leftover of the running one is not a leftover.
        assert!(matches!(
            Journal::leftover(&state(&tmp), "wg0"),
            Err(JournalError::InUse { .. })
        ));

        crash(journal);
        let err = Journal::create(&state(&tmp), "wg0").unwrap_err();
        assert!(matches!(err, JournalError::LeftOver { .. }), "{err:?}");
        assert!(err.to_string().contains("warren-helper recover"), "{err}");
    }

    #[test]
    fn leftovers_are_found_loaded_and_recovered_newest_first() {
        let tmp = TempDir::new("journal");
        let mut a = Journal::create(&state(&tmp), "wg0").unwrap();
        for change in [route(1), route(2), sysctl(), rule()] {
            a.record(change).unwrap();
        }
        crash(a);
        let mut b = Journal::create(&state(&tmp), "wg1").unwrap();
        b.record(route(3)).unwrap();
        crash(b);
        let live = Journal::create(&state(&tmp), "wg2").unwrap();

        let leftovers = Journal::leftovers(&state(&tmp)).unwrap();
        assert_eq!(leftovers.len(), 3);
        let mut loaded: Vec<Journal> = Vec::new();
        for leftover in leftovers {
            match leftover {
                Ok(journal) => loaded.push(journal),
                Err(err) => assert!(
                    matches!(&err, JournalError::InUse { ifname, .. } if ifname == "wg2"),
                    "{err:?}"
                ),
            }
        }
        assert_eq!(
            loaded.iter().map(Journal::ifname).collect::<Vec<_>>(),
            ["wg0", "wg1"]
        );
        let mut wg0 = loaded.remove(0);
        assert_eq!(wg0.changes(), [route(1), route(2), sysctl(), rule()]);
        assert!(!wg0.is_from_earlier_boot());

        let order = RefCell::new(Vec::new());
        let outcome = block_on(wg0.undo_all_with(|change| {
            order.borrow_mut().push(change);
            async { Ok(()) }
        }));
        assert_eq!(*order.borrow(), [rule(), sysctl(), route(2), route(1)]);
        assert_eq!(outcome.undone, *order.borrow());
        assert!(outcome.is_complete());
        wg0.close().unwrap();
        assert!(!state(&tmp).join("wg0.journal").exists());
        assert!(!state(&tmp).join("wg0.lock").exists());
        live.close().unwrap();
    }

    #[test]
    fn failed_undos_stay_for_the_next_attempt_and_undo_is_repeatable() {
        let tmp = TempDir::new("journal");
        let mut journal = Journal::create(&state(&tmp), "wg0").unwrap();
        for change in [route(1), route(2), route(3)] {
            journal.record(change).unwrap();
        }
        let outcome = block_on(journal.undo_all_with(|change| async move {
            if change == route(2) {
                Err(anyhow::anyhow!("failed to remove route 2: busy"))
            } else {
                Ok(())
            }
        }));
        assert_eq!(outcome.undone, [route(3), route(1)]);
        assert_eq!(
            outcome.failed,
            [(route(2), "failed to remove route 2: busy".to_string())]
        );
        assert_eq!(journal.changes(), [route(2)]);
        assert_eq!(on_disk(journal.path()).changes, [route(2)]);

        // Closing keeps the file for the next recovery, which retries only what is left.
        let path = journal.path().to_owned();
        let err = journal.close().unwrap_err();
        assert!(
            matches!(err, JournalError::NotEmpty { count: 1, .. }),
            "{err:?}"
        );
        let mut again = Journal::leftover(&state(&tmp), "wg0").unwrap().unwrap();
        assert_eq!(again.path(), path);
        let calls = RefCell::new(0);
        let outcome = block_on(again.undo_all_with(|_| {
            *calls.borrow_mut() += 1;
            async { Ok(()) }
        }));
        assert_eq!(*calls.borrow(), 1);
        assert_eq!(outcome.undone, [route(2)]);
        again.close().unwrap();
        assert!(Journal::leftover(&state(&tmp), "wg0").unwrap().is_none());
    }

    /// A journal exactly as format 1 was written before the change types moved to
    /// `platform::change` (and as any earlier helper left it): it must still be read, in order.
    const FORMAT_1_JOURNAL: &str = r#"{
  "version": 1,
  "ifname": "wg0",
  "pid": 4242,
  "boot_id": "an-earlier-boot",
  "changes": [
    {
      "network": {
        "route_added": {
          "link": { "name": "wg0", "index": 7 },
          "route": "198.18.1.0/24",
          "table": 254
        }
      }
    },
    {
      "network": {
        "sysctl_set": {
          "name": "net.ipv4.conf.all.src_valid_mark",
          "value": "1",
          "previous": "0"
        }
      }
    },
    { "dns": { "ResolvedLink": { "ifname": "wg0", "ifindex": 7 } } },
    {
      "dns": {
        "ResolvConfFile": {
          "ifname": "wg0",
          "path": "/etc/resolv.conf",
          "original": { "Symlink": { "target": "../run/systemd/resolve/stub-resolv.conf" } }
        }
      }
    },
    { "firewall": { "NftTable": { "family": "inet", "name": "warren" } } }
  ]
}
"#;

    #[test]
    fn a_journal_of_format_1_is_read_and_undone_in_order() {
        use crate::platform::dns::{DnsChange, OriginalResolvConf};
        use crate::platform::firewall::FirewallChange;
        let tmp = TempDir::new("journal");
        prepare_dir(&state(&tmp)).unwrap();
        fs::write(state(&tmp).join("wg0.journal"), FORMAT_1_JOURNAL).unwrap();
        let mut journal = Journal::leftover(&state(&tmp), "wg0").unwrap().unwrap();
        assert_eq!(journal.pid(), 4242);
        let dns_link = Change::Dns(DnsChange::ResolvedLink {
            ifname: "wg0".into(),
            ifindex: 7,
        });
        let resolv_conf = Change::Dns(DnsChange::ResolvConfFile {
            ifname: "wg0".into(),
            path: "/etc/resolv.conf".into(),
            original: OriginalResolvConf::Symlink {
                target: "../run/systemd/resolve/stub-resolv.conf".into(),
            },
        });
        let table = Change::Firewall(FirewallChange::NftTable {
            family: "inet".into(),
            name: "warren".into(),
        });
        let expected = [
            route(1),
            sysctl(),
            dns_link.clone(),
            resolv_conf.clone(),
            table.clone(),
        ];
        assert_eq!(journal.changes(), expected);
        // What this helper writes reads back the same (the shape did not change).
        let written: Contents =
            serde_json::from_slice(&serde_json::to_vec(&journal.contents).unwrap()).unwrap();
        assert_eq!(written.changes, expected);

        let order = RefCell::new(Vec::new());
        let outcome = block_on(journal.undo_all_with(|change| {
            order.borrow_mut().push(change);
            async { Ok(()) }
        }));
        // On Linux the boot id differs from this boot's, so the network changes count as gone.
        let network_undone_here = boot_id().is_none();
        let mut undone_here = vec![table, resolv_conf, dns_link];
        if network_undone_here {
            undone_here.extend([sysctl(), route(1)]);
        }
        assert_eq!(*order.borrow(), undone_here);
        assert_eq!(outcome.undone.len(), 5);
        journal.close().unwrap();
    }

    /// Writes a leftover journal for `ifname` with the given boot and namespace ids.
    #[cfg(target_os = "linux")]
    fn plant(dir: &Path, ifname: &str, boot_id: Option<&str>, netns: Option<&str>) {
        let journal = Journal::create(dir, ifname).unwrap();
        let contents = Contents {
            boot_id: boot_id.map(str::to_owned),
            netns: netns.map(str::to_owned),
            changes: vec![route(1), sysctl()],
            ..journal.contents.clone()
        };
        let path = journal.path().to_owned();
        crash(journal);
        fs::write(&path, serde_json::to_vec(&contents).unwrap()).unwrap();
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_journal_of_another_namespace_is_left_alone() {
        let tmp = TempDir::new("journal");
        plant(&state(&tmp), "wg0", boot_id().as_deref(), Some("net:[1]"));
        let err = Journal::leftover(&state(&tmp), "wg0").unwrap_err();
        assert!(
            matches!(&err, JournalError::OtherNamespace { netns, .. } if netns == "net:[1]"),
            "{err:?}"
        );
        assert!(err.to_string().contains("inside that namespace"), "{err}");
        let reports = block_on(recover(&state(&tmp), None)).unwrap();
        assert!(
            matches!(
                reports[..],
                [Recovery::LeftAlone(JournalError::OtherNamespace { .. })]
            ),
            "{reports:?}"
        );
        assert!(state(&tmp).join("wg0.journal").exists());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn only_journals_of_this_boot_and_namespace_hold_a_shared_sysctl() {
        let tmp = TempDir::new("journal");
        plant(&state(&tmp), "wg1", boot_id().as_deref(), Some("net:[1]"));
        plant(
            &state(&tmp),
            "wg2",
            Some("another-boot"),
            netns_id().as_deref(),
        );
        let me = Journal::create(&state(&tmp), "wg0").unwrap();
        assert_eq!(me.sysctl_held_elsewhere(SRC_VALID_MARK), None);
        // A leftover of this boot and namespace holds it: its change is still in place.
        plant(
            &state(&tmp),
            "wg3",
            boot_id().as_deref(),
            netns_id().as_deref(),
        );
        assert_eq!(
            me.sysctl_held_elsewhere(SRC_VALID_MARK),
            Some(SysctlHolder {
                ifname: "wg3".into(),
                previous: "0".into()
            })
        );
        assert_eq!(me.sysctl_held_elsewhere("net.ipv4.ip_forward"), None);
        me.close().unwrap();
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn network_changes_of_an_earlier_boot_are_void() {
        let tmp = TempDir::new("journal");
        // Another boot: even another namespace id means nothing any more.
        plant(&state(&tmp), "wg0", Some("another-boot"), Some("net:[1]"));
        let mut journal = Journal::leftover(&state(&tmp), "wg0").unwrap().unwrap();
        assert!(journal.is_from_earlier_boot());
        let outcome = block_on(journal.undo_all_with(|change| async move {
            panic!("{change} was undone, but the reboot took it already")
        }));
        assert_eq!(outcome.undone, [sysctl(), route(1)]);
        journal.close().unwrap();
    }

    #[test]
    fn unreadable_journals_are_reported_not_guessed_at() {
        let tmp = TempDir::new("journal");
        let journal = Journal::create(&state(&tmp), "wg0").unwrap();
        let path = journal.path().to_owned();
        crash(journal);
        fs::write(&path, "{\"version\": 1, \"ifname\": \"wg0\"").unwrap();
        let err = Journal::leftover(&state(&tmp), "wg0").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("failed to parse journal {}: ", path.display())),
            "{err}"
        );
        fs::write(&path, "{\"version\": 99}").unwrap();
        let err = Journal::leftover(&state(&tmp), "wg0").unwrap_err();
        assert!(
            matches!(err, JournalError::Version { version: 99, .. }),
            "{err:?}"
        );
        let reports = block_on(recover(&state(&tmp), Some("wg0"))).unwrap();
        assert!(matches!(reports[..], [Recovery::Failed(_)]), "{reports:?}");
    }

    #[test]
    fn nothing_to_recover_is_nothing() {
        let tmp = TempDir::new("journal");
        assert!(block_on(recover(&state(&tmp), None)).unwrap().is_empty());
        assert!(block_on(recover(&state(&tmp), Some("wg0")))
            .unwrap()
            .is_empty());
        assert!(
            !state(&tmp).exists(),
            "recovery must not create the state dir"
        );
    }

    #[test]
    fn recover_undoes_and_removes_an_empty_leftover() {
        // A crash right after `create`, before any change: nothing to undo, the file goes.
        let tmp = TempDir::new("journal");
        crash(Journal::create(&state(&tmp), "wg0").unwrap());
        let reports = block_on(recover(&state(&tmp), Some("wg0"))).unwrap();
        assert!(
            matches!(&reports[..], [Recovery::Restored { ifname, undone, .. }] if ifname == "wg0" && undone.is_empty()),
            "{reports:?}"
        );
        Journal::create(&state(&tmp), "wg0")
            .unwrap()
            .close()
            .unwrap();
    }

    #[test]
    fn recorder_withdraws_a_change_that_was_not_made() {
        let tmp = TempDir::new("journal");
        let mut journal = Journal::create(&state(&tmp), "wg0").unwrap();
        let network = |c: Change| match c {
            Change::Network(change) => change,
            _ => unreachable!(),
        };
        Recorder::record(&mut journal, network(route(1))).unwrap();
        Recorder::record(&mut journal, network(route(2))).unwrap();
        Recorder::not_made(&mut journal, &network(route(2))).unwrap();
        assert_eq!(journal.changes(), [route(1)]);
        assert_eq!(on_disk(journal.path()).changes, [route(1)]);
        journal.forget_last().unwrap();
        journal.close().unwrap();
    }

    #[test]
    fn replace_rewrites_one_entry_in_place_or_appends() {
        let tmp = TempDir::new("journal");
        let mut journal = Journal::create(&state(&tmp), "wg0").unwrap();
        for change in [route(1), route(2)] {
            journal.record(change).unwrap();
        }
        journal.replace(&route(1), route(3)).unwrap();
        assert_eq!(journal.changes(), [route(3), route(2)]);
        assert_eq!(on_disk(journal.path()).changes, [route(3), route(2)]);
        journal.replace(&route(9), sysctl()).unwrap();
        assert_eq!(
            on_disk(journal.path()).changes,
            [route(3), route(2), sysctl()]
        );
        journal.contents.changes.clear();
        journal.close().unwrap();
    }

    #[test]
    fn interface_names_must_be_safe_file_names() {
        let tmp = TempDir::new("journal");
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "wg0:1",
            "a-very-long-interface",
        ] {
            assert!(
                matches!(
                    Journal::create(&state(&tmp), bad),
                    Err(JournalError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
        assert!(!state(&tmp).exists());
    }
}
