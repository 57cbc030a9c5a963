//! macOS: the kill switch as pf rules in Warren's anchor `com.apple/warren` (rendered by `pf.rs`),
//! loaded with `pfctl`, and pf enabled for as long as the kill switch needs it.
//!
//! - [`Ops::check`]: `pfctl` runs as this user, and the main ruleset evaluates the anchor (macOS's
//!   stock `/etc/pf.conf` has `anchor "com.apple/*"`; a custom pf.conf without it would leave the
//!   kill switch loaded but never consulted, which is worse than refusing).
//! - [`Ops::apply`]: journals [`FirewallChange::PfAnchor`], loads the anchor with
//!   `pfctl -a com.apple/warren -f -` (replacing a previous kill switch atomically: pfctl loads a
//!   ruleset whole), then enables pf with a reference, `pfctl -E`: pf is usually disabled on
//!   macOS, and a reference (rather than `pfctl -e`) lets every program that needs pf keep it
//!   enabled independently. The reference's token is only known once `pfctl -E` has answered, so
//!   the change is journaled twice: [`FirewallChange::PfEnabled`] without a token before, and with
//!   the token after.
//! - [`Ops::undo`]: flushes the anchor (`pfctl -a com.apple/warren -F all`; an empty anchor
//!   flushes fine) and releases the reference (`pfctl -X <token>`). A reference that pf no longer
//!   knows (released already, or pf was reloaded) counts as released. If the helper died between
//!   `pfctl -E` and journaling the token, pf stays enabled by one reference — with an empty
//!   anchor, so nothing is blocked.
//!
//! Every `pfctl` run has a time limit and its own output quoted in errors.

use super::pf::{self, ANCHOR};
use super::plan::SocketMatch;
use super::{FirewallChange, KillSwitchError, KillSwitchOps, KillSwitchPlan};
use std::fmt::Write as _;
use std::io;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;

const PFCTL: &str = "/sbin/pfctl";
/// The longest a `pfctl` run may take before it is killed.
const PFCTL_TIMEOUT: Duration = Duration::from_secs(30);

/// The macOS implementation: runs `pfctl`.
pub(super) struct Ops;

impl KillSwitchOps for Ops {
    fn check() -> Result<(), KillSwitchError> {
        let output = std::process::Command::new(PFCTL)
            .args(["-s", "rules"])
            .stdin(Stdio::null())
            .output()
            .map_err(|err| KillSwitchError::ToolUnusable {
                command: format!("{PFCTL} -s rules"),
                detail: err.to_string(),
            })?;
        if !output.status.success() {
            return Err(KillSwitchError::ToolUnusable {
                command: format!("{PFCTL} -s rules"),
                detail: failure(&output),
            });
        }
        if !pf::main_ruleset_evaluates_anchor(&String::from_utf8_lossy(&output.stdout)) {
            return Err(KillSwitchError::ToolUnusable {
                command: format!("{PFCTL} -s rules"),
                detail: format!(
                    "pf's main ruleset has no `anchor \"com.apple/*\"`, so rules in {ANCHOR} \
                     would never be evaluated; restore macOS's stock /etc/pf.conf or add \
                     `anchor \"{ANCHOR}\"` to it"
                ),
            });
        }
        Ok(())
    }

    async fn apply(
        plan: &KillSwitchPlan,
        record: &mut impl FnMut(FirewallChange) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        if let SocketMatch::Mark(mark) = plan.socket {
            anyhow::bail!(
                "the kill switch for {} would recognise the WireGuard socket by fwmark {mark}, \
                 which macOS does not have; leave FwMark unset",
                plan.ifname
            );
        }
        let anchor = FirewallChange::PfAnchor {
            anchor: ANCHOR.to_owned(),
        };
        journal(record, &anchor)?;
        pfctl(&["-a", ANCHOR, "-f", "-"], Some(&pf::ruleset(plan)))
            .await
            .map_err(|detail| {
                anyhow::anyhow!(
                    "failed to load the kill switch for {} ({anchor}): {detail}",
                    plan.ifname
                )
            })?;

        journal(record, &FirewallChange::PfEnabled { token: None })?;
        let output = pfctl(&["-E"], None)
            .await
            .map_err(|detail| anyhow::anyhow!("failed to enable pf: {detail}"))?;
        let token = pf::enable_token(&output).ok_or_else(|| {
            anyhow::anyhow!("`pfctl -E` printed no reference token: {}", output.trim())
        })?;
        journal(record, &FirewallChange::PfEnabled { token: Some(token) })?;
        tracing::info!(
            "kill switch on: pf anchor {ANCHOR} blocks traffic outside {}{}",
            plan.ifname,
            if plan.allow_lan {
                " except to the LAN"
            } else {
                ""
            }
        );
        Ok(())
    }

    /// Reloads the anchor only (`pfctl -a ... -f -` replaces its rules in one step); pf stays
    /// enabled on the reference the apply journaled.
    async fn update(_old: &KillSwitchPlan, new: &KillSwitchPlan) -> anyhow::Result<()> {
        if let SocketMatch::Mark(mark) = new.socket {
            anyhow::bail!(
                "the kill switch for {} would recognise the WireGuard socket by fwmark {mark}, \
                 which macOS does not have; leave FwMark unset",
                new.ifname
            );
        }
        pfctl(&["-a", ANCHOR, "-f", "-"], Some(&pf::ruleset(new)))
            .await
            .map_err(|detail| {
                anyhow::anyhow!(
                    "failed to update the kill switch for {} (pf anchor {ANCHOR}): {detail}",
                    new.ifname
                )
            })?;
        Ok(())
    }

    async fn undo(change: &FirewallChange) -> anyhow::Result<()> {
        match change {
            FirewallChange::PfAnchor { anchor } => {
                if !pf::is_warren_anchor(anchor) {
                    anyhow::bail!(
                        "refusing to flush {change}: it is not Warren's anchor (is the journal \
                         damaged?)"
                    );
                }
                pfctl(&["-a", anchor, "-F", "all"], None)
                    .await
                    .map_err(|detail| anyhow::anyhow!("failed to flush {change}: {detail}"))?;
                tracing::info!("kill switch off: {change} flushed");
                Ok(())
            }
            FirewallChange::PfEnabled { token: None } => Ok(()),
            FirewallChange::PfEnabled { token: Some(token) } => {
                if !token.bytes().all(|b| b.is_ascii_digit()) {
                    anyhow::bail!("refusing to release {change}: the token is not a number");
                }
                if let Err(detail) = pfctl(&["-X", token], None).await {
                    // Unknown to pf: released already, or pf was reloaded since.
                    tracing::info!("{change}: not released ({detail}); counting it as released");
                }
                Ok(())
            }
            other => Err(anyhow::anyhow!(
                "cannot remove {other} on macOS: another OS's firewall made it"
            )),
        }
    }
}

fn journal(
    record: &mut impl FnMut(FirewallChange) -> io::Result<()>,
    change: &FirewallChange,
) -> anyhow::Result<()> {
    record(change.clone())
        .map_err(|err| anyhow::anyhow!("failed to journal {change} before making it: {err}"))
}

/// Runs `pfctl args...` with `stdin`; returns its standard error and output (pfctl reports on
/// stderr), or says how it failed.
async fn pfctl(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let command = format!("{PFCTL} {}", args.join(" "));
    let mut child = tokio::process::Command::new(PFCTL)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("cannot run {command}: {err}"))?;
    let input = child.stdin.take();
    let run = async move {
        if let (Some(mut pipe), Some(text)) = (input, stdin) {
            pipe.write_all(text.as_bytes()).await?;
        }
        child.wait_with_output().await
    };
    let output = tokio::time::timeout(PFCTL_TIMEOUT, run)
        .await
        .map_err(|_| {
            format!(
                "{command} did not finish within {} s and was killed",
                PFCTL_TIMEOUT.as_secs()
            )
        })?
        .map_err(|err| format!("failed to run {command}: {err}"))?;
    if output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        Ok(text)
    } else {
        Err(format!("{command}: {}", failure(&output)))
    }
}

/// `pfctl exited with status 1: ...`.
fn failure(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    let mut text = format!("pfctl exited with {}", output.status);
    if !stderr.is_empty() {
        // Writing to a String cannot fail.
        let _ = write!(text, ": {stderr}");
    }
    text
}
