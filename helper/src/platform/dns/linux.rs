//! Linux: choose between systemd-resolved, resolvconf and rewriting `/etc/resolv.conf`, and
//! dispatch each step to the module of the plan's method (`resolved.rs`, `resolvconf.rs`,
//! `file.rs`; the file's watch while the tunnel is up, `file_watch.rs`).
//!
//! Detection, in order: resolved when its runtime directory exists and `org.freedesktop.resolve1`
//! answers on the system bus; else resolvconf when a `resolvconf` program is installed that is
//! not systemd's `resolvectl` shim (which needs resolved); else the file.

use super::{
    file, file_watch, resolvconf, resolved, DnsChange, DnsMethod, DnsOps, DnsPlan, DnsPlanError,
};
use crate::platform::Recorder;
use std::io;
use std::path::Path;

/// The Linux implementation of the DNS steps.
pub(super) struct Ops;

impl DnsOps for Ops {
    async fn detect() -> Result<DnsMethod, DnsPlanError> {
        match resolved::probe().await {
            Ok(()) => return Ok(DnsMethod::Resolved),
            Err(reason) => tracing::debug!("not using systemd-resolved for DNS: {reason}"),
        }
        if resolvconf::usable_without_resolved() {
            return Ok(DnsMethod::Resolvconf);
        }
        tracing::debug!("no usable resolvconf program: DNS by rewriting the resolv.conf file");
        Ok(DnsMethod::File)
    }

    async fn check(plan: &DnsPlan) -> Result<(), DnsPlanError> {
        match plan.method {
            DnsMethod::Resolved => {
                resolved::check().await?;
                warn_if_resolv_conf_bypasses_resolved(&plan.resolv_conf);
                Ok(())
            }
            DnsMethod::Resolvconf => resolvconf::check().await,
            DnsMethod::File => file::check(plan),
            other => Err(DnsPlanError::MethodUnavailable {
                method: other,
                reason: "it is not a Linux DNS method".into(),
            }),
        }
    }

    async fn apply(
        plan: &DnsPlan,
        record: &mut impl FnMut(DnsChange) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        match plan.method {
            DnsMethod::Resolved => resolved::apply(plan, record).await,
            DnsMethod::Resolvconf => resolvconf::apply(plan, record).await,
            DnsMethod::File => file::apply(plan, record),
            other => Err(anyhow::anyhow!("DNS method {other} is not a Linux method")),
        }
    }

    async fn undo(change: &DnsChange) -> anyhow::Result<()> {
        match change {
            DnsChange::ResolvedLink { ifname, ifindex } => resolved::undo(ifname, *ifindex).await,
            DnsChange::ResolvconfRecord { record, .. } => resolvconf::undo(record).await,
            DnsChange::ResolvConfFile {
                ifname,
                path,
                original,
            } => file::undo(ifname, path, original),
            other => Err(anyhow::anyhow!(
                "cannot undo {other:?} on Linux: another OS's DNS method made it"
            )),
        }
    }

    async fn guard(
        plan: &DnsPlan,
        applied: &[DnsChange],
        journal: &mut impl Recorder<DnsChange>,
    ) -> Option<String> {
        if plan.method != DnsMethod::File {
            return None;
        }
        let written = applied
            .iter()
            .rev()
            .find(|c| matches!(c, DnsChange::ResolvConfFile { .. }));
        let change = written?;
        file_watch::guard(plan, change.clone(), journal).await
    }
}

/// resolved's per-link settings reach programs through its stub (127.0.0.53), its generated
/// resolv.conf files or nss-resolve; a hand-written `/etc/resolv.conf` bypasses all but the last.
fn warn_if_resolv_conf_bypasses_resolved(resolv_conf: &Path) {
    let through_resolved = std::fs::canonicalize(resolv_conf)
        .is_ok_and(|real| real.starts_with(resolved::RUN_DIR))
        || std::fs::read_to_string(resolv_conf).is_ok_and(|text| {
            text.lines()
                .any(|line| line.trim() == "nameserver 127.0.0.53")
        });
    if !through_resolved {
        tracing::warn!(
            "{} is not managed by systemd-resolved: programs that read it directly will not use \
             the tunnel's DNS servers (set {}=file or link it to {}/stub-resolv.conf)",
            resolv_conf.display(),
            super::METHOD_ENV,
            resolved::RUN_DIR
        );
    }
}
