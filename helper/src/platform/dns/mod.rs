//! DNS while a tunnel is up (placeholder: the implementation is being written).

use serde::{Deserialize, Serialize};

/// One DNS change, journaled before it is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsChange {}

/// Reverts one journaled DNS change.
#[allow(dead_code)]
pub async fn undo(change: &DnsChange) -> anyhow::Result<()> {
    match *change {}
}
