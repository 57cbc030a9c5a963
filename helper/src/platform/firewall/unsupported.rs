//! The stub for every OS without a kill switch yet (macOS will get a pf anchor, Windows a WFP
//! dynamic session): [`Ops::check`] refuses with [`Unsupported`], so the caller stops before any
//! change, and [`Ops::apply`] refuses without recording anything.

use super::{FirewallChange, KillSwitchError, KillSwitchOps, KillSwitchPlan, Unsupported};
use std::io;

const UNSUPPORTED: Unsupported = Unsupported {
    what: "the kill switch (blocking untunneled traffic)",
    os: std::env::consts::OS,
};

/// The stand-in for a real implementation.
pub(super) struct Ops;

impl KillSwitchOps for Ops {
    fn check() -> Result<(), KillSwitchError> {
        Err(UNSUPPORTED.into())
    }

    async fn apply(
        _plan: &KillSwitchPlan,
        _record: &mut impl FnMut(FirewallChange) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        Err(UNSUPPORTED.into())
    }

    async fn undo(change: &FirewallChange) -> anyhow::Result<()> {
        // Only Linux makes the changes there are today; a journal from it is not undone here.
        Err(anyhow::anyhow!("cannot remove {change}: {UNSUPPORTED}"))
    }
}
