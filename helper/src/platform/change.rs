//! What the platform changes on the host, as one type, and how each is undone: the [`Change`] of
//! any concern (network, DNS, kill switch), the [`Recorder`] contract through which each concern's
//! `apply` hands its changes to whoever keeps the list (and learns which shared sysctls other
//! tunnels hold: [`SysctlHolder`]), and [`undo_change`], the dispatcher to the concerns'
//! idempotent `undo`s.
//!
//! The platform owns these; the journal (`crate::journal`) only keeps them durably and calls
//! [`undo_change`], so the dependency runs one way: journal → platform. A [`Change`] is
//! serialised into journal files as it is here (`{"network": {...}}`, `{"dns": {...}}`,
//! `{"firewall": {...}}`): renaming a variant or a field breaks reading the journals an earlier
//! helper left behind.

use super::dns::DnsChange;
use super::firewall::FirewallChange;
use super::NetworkChange;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// One change of any concern, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Addresses, MTU, routes, rules, sysctls (`platform`).
    Network(NetworkChange),
    /// Resolvers and search domains (`platform::dns`).
    Dns(DnsChange),
    /// The kill switch (`platform::firewall`).
    Firewall(FirewallChange),
}

impl From<NetworkChange> for Change {
    fn from(change: NetworkChange) -> Self {
        Change::Network(change)
    }
}

impl From<DnsChange> for Change {
    fn from(change: DnsChange) -> Self {
        Change::Dns(change)
    }
}

impl From<FirewallChange> for Change {
    fn from(change: FirewallChange) -> Self {
        Change::Firewall(change)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Network(change) => write!(f, "{change}"),
            Change::Dns(change) => write!(f, "DNS {change:?}"),
            Change::Firewall(change) => write!(f, "firewall {change:?}"),
        }
    }
}

/// Where a concern's `apply` hands its changes, each before it is made.
pub trait Recorder<C> {
    /// Records `change` before it is made. An error means it must not be made.
    fn record(&mut self, change: C) -> io::Result<()>;
    /// The OS refused `change` (the one just recorded), so it was not made: withdraws it, so that
    /// undoing the list does not remove what was in its way, which belongs to someone else.
    fn not_made(&mut self, change: &C) -> io::Result<()>;

    /// Replaces the newest entry equal to `old` by `new` (a change re-made with other undo data,
    /// such as a new backup), as one write where the list is durable. The default records `new`
    /// and then withdraws `old`: for a moment both are listed, which an idempotent undo bears.
    // Only Linux's `file` DNS method re-makes a change while the tunnel is up.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn replace(&mut self, old: &C, new: C) -> io::Result<()> {
        self.record(new)?;
        self.not_made(old)
    }

    /// The lock that serialises checking and writing a kernel setting other tunnels may share
    /// (`crate::sys::setting_lock`), taken around each such step; `None` when there is nobody to
    /// share with (an in-memory list).
    fn shared_setting_lock(&self) -> Option<PathBuf> {
        None
    }

    /// Another live tunnel that holds the sysctl `name` (its journal lists a `SysctlSet` of it),
    /// with the value the setting had before that tunnel set it. Asked under
    /// [`Recorder::shared_setting_lock`]. `None` when no other tunnel holds it.
    fn sysctl_held_elsewhere(&self, _name: &str) -> Option<SysctlHolder> {
        None
    }
}

/// A tunnel whose journal holds a shared sysctl ([`Recorder::sysctl_held_elsewhere`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlHolder {
    /// Its interface.
    pub ifname: String,
    /// The value before it set the sysctl, as its journal says: the true original, which
    /// whoever holds the sysctl last restores.
    pub previous: String,
}

/// An in-memory list, for tests and for callers that keep the list themselves.
impl<C: PartialEq> Recorder<C> for Vec<C> {
    fn record(&mut self, change: C) -> io::Result<()> {
        self.push(change);
        Ok(())
    }

    fn not_made(&mut self, change: &C) -> io::Result<()> {
        if let Some(i) = self.iter().rposition(|c| c == change) {
            self.remove(i);
        }
        Ok(())
    }

    fn replace(&mut self, old: &C, new: C) -> io::Result<()> {
        match self.iter().rposition(|c| c == old) {
            Some(i) => self[i] = new,
            None => self.push(new),
        }
        Ok(())
    }
}

/// Reverts one change of any concern (idempotent, as each concern's `undo` is): the dispatcher
/// the journal's undo calls.
pub async fn undo_change(change: &Change) -> anyhow::Result<()> {
    match change {
        Change::Network(change) => super::undo(change).await,
        Change::Dns(change) => super::dns::undo(change).await,
        Change::Firewall(change) => super::firewall::undo(change).await,
    }
}

/// One recorder shared by the parts of a running tunnel that each journal now and then (the DNS
/// guard, the network follower), all polled by one task: each call locks it for that call only,
/// and a call never waits, so the lock is never contended for longer than one journal write.
pub struct SharedRecorder<'s, 'a, R>(&'s std::sync::Mutex<&'a mut R>);

impl<'s, 'a, R> SharedRecorder<'s, 'a, R> {
    /// Shares the recorder in `inner`.
    pub fn new(inner: &'s std::sync::Mutex<&'a mut R>) -> Self {
        SharedRecorder(inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, &'a mut R> {
        // A panic while journaling leaves the list as it was written; go on with it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<C, R: Recorder<C>> Recorder<C> for SharedRecorder<'_, '_, R> {
    fn record(&mut self, change: C) -> io::Result<()> {
        self.lock().record(change)
    }
    fn not_made(&mut self, change: &C) -> io::Result<()> {
        self.lock().not_made(change)
    }
    fn replace(&mut self, old: &C, new: C) -> io::Result<()> {
        self.lock().replace(old, new)
    }
    fn shared_setting_lock(&self) -> Option<PathBuf> {
        self.lock().shared_setting_lock()
    }
    fn sysctl_held_elsewhere(&self, name: &str) -> Option<SysctlHolder> {
        self.lock().sysctl_held_elsewhere(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vec_records_and_withdraws_the_newest_equal_change() {
        let mut list: Vec<u32> = Vec::new();
        for n in [1, 2, 1] {
            list.record(n).unwrap();
        }
        list.not_made(&1).unwrap();
        assert_eq!(list, [1, 2]);
        list.not_made(&3).unwrap();
        assert_eq!(list, [1, 2]);
    }

    #[test]
    fn a_shared_recorder_writes_through_to_the_one_list() {
        let mut list: Vec<u32> = Vec::new();
        {
            let shared = std::sync::Mutex::new(&mut list);
            let mut a = SharedRecorder::new(&shared);
            let mut b = SharedRecorder::new(&shared);
            a.record(1).unwrap();
            b.record(2).unwrap();
            a.replace(&1, 3).unwrap();
            b.not_made(&2).unwrap();
        }
        assert_eq!(list, vec![3]);
    }
}
