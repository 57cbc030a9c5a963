//! The stub for every OS without a real DNS module yet (macOS and Windows arrive in a later issue):
//! every step fails with [`Unsupported`], so a tunnel with `DNS =` is refused before anything
//! changes.

use super::{DnsChange, DnsMethod, DnsOps, DnsPlan, DnsPlanError};
use crate::platform::Unsupported;
use std::io;

const UNSUPPORTED: Unsupported = Unsupported {
    what: "configuring DNS",
    os: std::env::consts::OS,
};

/// The stand-in for a real implementation.
pub(super) struct Ops;

impl DnsOps for Ops {
    async fn detect() -> Result<DnsMethod, DnsPlanError> {
        Err(UNSUPPORTED.into())
    }
    async fn check(_plan: &DnsPlan) -> Result<(), DnsPlanError> {
        Err(UNSUPPORTED.into())
    }
    async fn apply(
        _plan: &DnsPlan,
        _record: &mut impl FnMut(DnsChange) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        Err(UNSUPPORTED.into())
    }
    async fn undo(_change: &DnsChange) -> anyhow::Result<()> {
        Err(UNSUPPORTED.into())
    }
}
