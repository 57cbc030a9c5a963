//! The kill switch firewall (placeholder: the implementation is being written).

use serde::{Deserialize, Serialize};

/// One firewall change, journaled before it is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FirewallChange {}

/// Reverts one journaled firewall change.
#[allow(dead_code)]
pub async fn undo(change: &FirewallChange) -> anyhow::Result<()> {
    match *change {}
}
