//! The `resolvconf` method: hand the tunnel's resolvers to the `resolvconf` program (Debian's
//! resolvconf or openresolv), which merges them into `/etc/resolv.conf`, exactly as wg-quick does:
//! `resolvconf -a <record> -m 0 -x` with a resolv.conf fragment on stdin (`-m 0`: first in order;
//! `-x`: exclusive, the tunnel's resolvers only), undone with `resolvconf -d <record> -f` (`-f`:
//! a record that is already gone is not an error).
//!
//! The record is the interface name, prefixed like wg-quick does with the first `name*` pattern of
//! `/etc/resolvconf/interface-order` (`tun.` on Debian), so Debian's resolvconf orders it first.
//! The exact record name is journaled, so undo does not depend on that file staying the same.
//!
//! systemd ships a `resolvconf` that is really `resolvectl` and only works while systemd-resolved
//! runs; [`check`] refuses that combination up front.

use super::{journal, resolved, DnsChange, DnsMethod, DnsPlan, DnsPlanError};
use anyhow::{anyhow, bail, Context as _};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;

// Where Debian's resolvconf keeps its interface ordering.
use crate::sys::paths::RESOLVCONF_INTERFACE_ORDER as INTERFACE_ORDER;

/// How long one `resolvconf` run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(15);

/// Directories searched after `PATH` (root's `PATH` may lack the sbin ones).
const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The `resolvconf` program, if one is installed.
pub(super) fn find_program() -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join("resolvconf"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// True when `program` is systemd's `resolvectl` under the name `resolvconf`.
fn is_systemd_shim(program: &Path) -> bool {
    std::fs::canonicalize(program).is_ok_and(|real| {
        real.file_name()
            .is_some_and(|name| name == "resolvectl" || name == "systemd-resolve")
    })
}

/// wg-quick's record prefix: the first line of `interface_order` that is a plain name followed by
/// `*` (`tun*` → `tun.`); empty when there is none.
pub(super) fn record_prefix(interface_order: &str) -> String {
    interface_order
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_suffix('*'))
        .find(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(|name| format!("{name}."))
        .unwrap_or_default()
}

/// The resolv.conf fragment given to `resolvconf -a`.
pub(super) fn fragment(plan: &DnsPlan) -> String {
    let mut text = String::new();
    for server in &plan.servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    if !plan.search.is_empty() {
        text.push_str(&format!("search {}\n", plan.search.join(" ")));
    }
    text
}

/// Preflight: a usable `resolvconf` is installed.
pub(super) async fn check() -> Result<(), DnsPlanError> {
    let unavailable = |reason: String| DnsPlanError::MethodUnavailable {
        method: DnsMethod::Resolvconf,
        reason,
    };
    let program = find_program().ok_or_else(|| {
        unavailable(
            "no resolvconf program in PATH, /usr/sbin or /sbin (install resolvconf or openresolv)"
                .into(),
        )
    })?;
    if is_systemd_shim(&program) {
        if let Err(reason) = resolved::probe().await {
            return Err(unavailable(format!(
                "{} is systemd's resolvectl, which needs systemd-resolved: {reason}",
                program.display()
            )));
        }
    }
    Ok(())
}

/// True when a `resolvconf` is installed that can work without systemd-resolved.
pub(super) fn usable_without_resolved() -> bool {
    find_program().is_some_and(|program| !is_systemd_shim(&program))
}

/// Adds the tunnel's record.
pub(super) async fn apply(
    plan: &DnsPlan,
    record: &mut impl FnMut(DnsChange) -> io::Result<()>,
) -> anyhow::Result<()> {
    let program = find_program().ok_or_else(|| anyhow!("failed to find the resolvconf program"))?;
    let interface_order = std::fs::read_to_string(INTERFACE_ORDER).unwrap_or_default();
    let name = format!("{}{}", record_prefix(&interface_order), plan.ifname);
    journal(
        record,
        DnsChange::ResolvconfRecord {
            ifname: plan.ifname.clone(),
            record: name.clone(),
        },
    )?;
    run(&program, &["-a", &name, "-m", "0", "-x"], &fragment(plan)).await
}

/// Removes the record `name`; a record that is gone is not an error.
pub(super) async fn undo(name: &str) -> anyhow::Result<()> {
    let Some(program) = find_program() else {
        tracing::warn!(
            "resolvconf is no longer installed: record {name} cannot be removed (nor used)"
        );
        return Ok(());
    };
    run(&program, &["-d", name, "-f"], "").await
}

async fn run(program: &Path, args: &[&str], stdin: &str) -> anyhow::Result<()> {
    let command_line = format!("{} {}", program.display(), args.join(" "));
    let output = async {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).await?;
            // Dropping it closes the pipe: resolvconf reads to the end.
        }
        child.wait_with_output().await
    };
    let output = tokio::time::timeout(RUN_TIMEOUT, output)
        .await
        .map_err(|_| {
            anyhow!(
                "failed to run `{command_line}`: no answer within {} s",
                RUN_TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("failed to run `{command_line}`"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "failed to run `{command_line}`: {}: {}",
            output.status,
            stderr.trim()
        );
    }
    tracing::debug!("ran `{command_line}`");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_prefix_follows_wg_quick() {
        let debian = "# interface-order(5)\nlo.inet6\nlo.inet\nlo.@(dnsmasq|pdnsd)\nlo\n\
                      tun*\ntap*\nhso*\nem+([0-9])?(_+([0-9]))*\n*\n";
        assert_eq!(record_prefix(debian), "tun.");
        assert_eq!(record_prefix("lo\nwg-vpn*\ntun*\n"), "wg-vpn.");
        assert_eq!(record_prefix(""), "");
        assert_eq!(record_prefix("*\nlo\n"), "");
    }

    #[test]
    fn the_fragment_lists_servers_then_search_domains() {
        let plan = DnsPlan {
            ifname: "wg0".into(),
            method: DnsMethod::Resolvconf,
            servers: vec![
                "198.18.200.53".parse().unwrap(),
                "fd00::53".parse().unwrap(),
            ],
            search: vec!["corp.example".into()],
            route_all: true,
            resolv_conf: "/etc/resolv.conf".into(),
            backup_dir: "/var/lib/warren/dns".into(),
            warnings: vec![],
        };
        assert_eq!(
            fragment(&plan),
            "nameserver 198.18.200.53\nnameserver fd00::53\nsearch corp.example\n"
        );
    }

    #[tokio::test]
    async fn a_failing_program_is_reported_with_its_stderr() {
        let err = run(Path::new("/bin/sh"), &["-c", "echo nope >&2; exit 3"], "")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to run `/bin/sh -c echo nope >&2; exit 3`: exit status: 3: nope"
        );
        run(
            Path::new("/bin/sh"),
            &["-c", "read line; test \"$line\" = hi"],
            "hi\n",
        )
        .await
        .unwrap();
    }
}
