//! Linux: the kill switch as one nftables table, loaded and removed with the `nft` command from
//! Debian's nftables package (`nft -f -`, the script on stdin, one transaction per run).
//!
//! It owns nothing but the table `inet warren`: it creates or replaces it in [`Ops::apply`] and
//! deletes it whole in [`Ops::undo`], never another table, never `flush ruleset`. Every `nft` run
//! is bounded in time ([`NFT_TIMEOUT`]) and its error output is quoted in the error.

use super::nft::{self, TABLE_FAMILY, TABLE_NAME};
use super::{FirewallChange, KillSwitchError, KillSwitchOps, KillSwitchPlan};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;

/// The longest an `nft` run may take before it is killed.
const NFT_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`Ops::check`] asks the kernel to validate (and not commit): an `inet` table with a
/// hooked chain and the matches and verdicts the kill switch uses. The table name is one Warren
/// never creates, so an existing kill switch cannot make the check fail.
const CHECK_SCRIPT: &str = "\
table inet warren_check {
	chain output {
		type filter hook output priority filter - 10; policy accept;
		meta mark 0x1 ip6 daddr . udp dport { fd00::1 . 1 } accept
		meta l4proto { icmp, ipv6-icmp } ct state related accept
		meta l4proto tcp reject with tcp reset
		reject with icmpx admin-prohibited
	}
}
";

/// The Linux implementation: runs `nft`.
pub(super) struct Ops;

impl KillSwitchOps for Ops {
    fn check() -> Result<(), KillSwitchError> {
        let program = nft_program();
        let command = format!("{} --check --file -", program.display());
        let output =
            run_blocking(&program, &["--check", "--file", "-"], CHECK_SCRIPT).map_err(|err| {
                KillSwitchError::ToolMissing {
                    program: program.display().to_string(),
                    cause: err.to_string(),
                }
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(KillSwitchError::ToolUnusable {
                command,
                detail: failure(&output),
            })
        }
    }

    async fn apply(
        plan: &KillSwitchPlan,
        record: &mut impl FnMut(FirewallChange) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        let change = FirewallChange::NftTable {
            family: TABLE_FAMILY.to_owned(),
            name: TABLE_NAME.to_owned(),
        };
        record(change.clone()).map_err(|err| {
            anyhow::anyhow!("failed to journal {change} before creating it: {err}")
        })?;
        let script = nft::ruleset(plan);
        run_nft(&script).await.map_err(|detail| {
            anyhow::anyhow!(
                "failed to load the kill switch for {} ({change}): {detail}",
                plan.ifname
            )
        })?;
        tracing::info!(
            "kill switch on: {change} blocks traffic outside {}{}",
            plan.ifname,
            if plan.allow_lan {
                " except to the LAN"
            } else {
                ""
            }
        );
        Ok(())
    }

    async fn update(old: &KillSwitchPlan, new: &KillSwitchPlan) -> anyhow::Result<()> {
        let (script, what) = if old.differs_only_in_endpoints(new) {
            (nft::endpoints_update(new), "its endpoint sets")
        } else {
            (nft::ruleset(new), "the whole table")
        };
        run_nft(&script).await.map_err(|detail| {
            anyhow::anyhow!(
                "failed to update the kill switch for {} ({what}): {detail}",
                new.ifname
            )
        })?;
        tracing::info!(
            "kill switch for {} updated ({what}): endpoints {}",
            new.ifname,
            endpoint_list(&new.endpoints)
        );
        Ok(())
    }

    async fn undo(change: &FirewallChange) -> anyhow::Result<()> {
        match change {
            FirewallChange::NftTable { family, name } => {
                if !nft::is_warren_table(family, name) {
                    anyhow::bail!(
                        "refusing to remove {change}: it is not a table Warren creates \
                         (is the journal damaged?)"
                    );
                }
                run_nft(&nft::delete_script(family, name))
                    .await
                    .map_err(|detail| anyhow::anyhow!("failed to remove {change}: {detail}"))?;
                tracing::info!("kill switch off: {change} removed (or already gone)");
                Ok(())
            }
            other => Err(anyhow::anyhow!(
                "cannot remove {other} on Linux: another OS's firewall made it"
            )),
        }
    }
}

/// `198.18.0.2:51820, [fd00:1::2]:51820`, for the log.
fn endpoint_list(endpoints: &[std::net::SocketAddr]) -> String {
    let list: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    list.join(", ")
}

/// `nft`: from `PATH`, else where Debian installs it (a service's `PATH` may lack `/usr/sbin`).
pub(crate) fn nft_program() -> PathBuf {
    let in_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nft"))
            .find(|candidate| candidate.is_file())
    });
    in_path
        .or_else(|| {
            ["/usr/sbin/nft", "/sbin/nft"]
                .iter()
                .map(PathBuf::from)
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("nft"))
}

/// Runs `nft --file -` with `script` on stdin; on failure, says how (not found, timed out, or the
/// exit status and nft's own message).
pub(crate) async fn run_nft(script: &str) -> Result<(), String> {
    let program = nft_program();
    let mut child = tokio::process::Command::new(&program)
        .args(["--file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| {
            format!(
                "cannot run {} (is Debian's nftables installed?): {err}",
                program.display()
            )
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| "nft's stdin is not a pipe".to_owned())?;
    let run = async move {
        stdin.write_all(script.as_bytes()).await?;
        drop(stdin);
        child.wait_with_output().await
    };
    let output = tokio::time::timeout(NFT_TIMEOUT, run)
        .await
        .map_err(|_| {
            format!(
                "{} did not finish within {} s and was killed",
                program.display(),
                NFT_TIMEOUT.as_secs()
            )
        })?
        .map_err(|err| format!("failed to run {}: {err}", program.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failure(&output))
    }
}

/// Runs `program args` with `stdin` and waits for it (for [`Ops::check`], which is synchronous).
fn run_blocking(program: &Path, args: &[&str], stdin: &str) -> io::Result<Output> {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.as_bytes())?;
    }
    child.wait_with_output()
}

/// `nft failed (exit status: 1): Error: ...`.
fn failure(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    if stderr.is_empty() {
        format!("nft failed ({})", output.status)
    } else {
        format!("nft failed ({}): {stderr}", output.status)
    }
}

#[cfg(test)]
mod tests {
    //! Root only: apply and undo for real, in a network namespace of this test's own.

    use super::super::plan::tests::{ip, net, sock};
    use super::super::{plan, KillSwitchInput};
    use super::*;

    const OTHER_TABLE: &str = "\
table inet someoneelse {
	chain output {
		type filter hook output priority 0; policy accept;
		ip daddr 198.18.99.99 counter accept
	}
}
";

    fn nft_sync(args: &[&str], stdin: &str) -> Output {
        run_blocking(&nft_program(), args, stdin).unwrap()
    }

    fn list(table: &str) -> Option<String> {
        let mut args = vec!["list", "table"];
        args.extend(table.split(' '));
        let output = nft_sync(&args, "");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn netns_inode(path: &str) -> std::path::PathBuf {
        std::fs::read_link(path).unwrap()
    }

    fn sample_input() -> KillSwitchInput<'static> {
        KillSwitchInput {
            ifname: "wg0",
            endpoints: Vec::leak(vec![sock("198.18.0.2:51820"), sock("[fd00:1::2]:51820")]),
            fwmark: Some(0xca6c),
            listen_port: None,
            dns_servers: Vec::leak(vec![ip("198.19.0.53")]),
            tunnel_addresses: Vec::leak(vec![net("198.19.0.1/24"), net("fd00:2::1/64")]),
            allow_lan: true,
        }
    }

    fn sample_plan() -> KillSwitchPlan {
        plan(sample_input()).unwrap()
    }

    /// The whole life of a kill switch against the real kernel: preflight, journal before the
    /// change, apply, re-apply, undo, undo again; another program's table is left exactly as it
    /// was, and undo refuses to touch it.
    fn life_cycle() {
        let other_before = {
            let output = nft_sync(&["--file", "-"], OTHER_TABLE);
            assert!(output.status.success(), "{}", failure(&output));
            list("inet someoneelse").unwrap()
        };
        Ops::check().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let plan = sample_plan();

        // A journal that cannot be written means no change at all.
        let mut broken = |_: FirewallChange| Err(io::Error::other("disk full"));
        let err = runtime
            .block_on(Ops::apply(&plan, &mut broken))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to journal nftables table inet warren before creating it: disk full"
        );
        assert_eq!(list("inet warren"), None);

        // The change is journaled while the table does not exist yet.
        let mut journal = Vec::new();
        let mut record = |change: FirewallChange| {
            assert_eq!(list("inet warren"), None, "recorded after the change");
            journal.push(change);
            Ok(())
        };
        runtime.block_on(Ops::apply(&plan, &mut record)).unwrap();
        let installed = list("inet warren").expect("table inet warren after apply");
        assert!(installed.contains("policy drop"), "{installed}");
        assert!(installed.contains("198.18.0.2 . 51820"), "{installed}");
        assert_eq!(
            journal,
            [FirewallChange::NftTable {
                family: "inet".into(),
                name: "warren".into()
            }]
        );

        // Applying again replaces the table (same contents, one table).
        let mut ignore = |_: FirewallChange| Ok(());
        runtime.block_on(Ops::apply(&plan, &mut ignore)).unwrap();
        assert_eq!(list("inet warren").as_deref(), Some(installed.as_str()));

        // An endpoint update changes the set's elements in place; a port change the table.
        let moved = super::super::plan(KillSwitchInput {
            endpoints: &[sock("198.18.3.2:51820")],
            ..sample_input()
        })
        .unwrap();
        runtime.block_on(Ops::update(&plan, &moved)).unwrap();
        let updated = list("inet warren").expect("table inet warren after an update");
        assert!(updated.contains("198.18.3.2 . 51820"), "{updated}");
        assert!(!updated.contains("198.18.0.2"), "{updated}");
        assert!(!updated.contains("fd00:1::2 . 51820"), "{updated}");
        let by_port = super::super::plan(KillSwitchInput {
            fwmark: None,
            listen_port: Some(40000),
            ..sample_input()
        })
        .unwrap();
        runtime.block_on(Ops::update(&moved, &by_port)).unwrap();
        let reloaded = list("inet warren").expect("table inet warren after a reload");
        assert!(reloaded.contains("udp sport 40000"), "{reloaded}");
        assert!(!reloaded.contains("meta mark"), "{reloaded}");
        runtime.block_on(Ops::update(&by_port, &plan)).unwrap();
        assert_eq!(list("inet warren").as_deref(), Some(installed.as_str()));

        // Undo refuses another program's table, and leaves it alone.
        let foreign = FirewallChange::NftTable {
            family: "inet".into(),
            name: "someoneelse".into(),
        };
        let err = runtime.block_on(Ops::undo(&foreign)).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("refusing to remove nftables table inet someoneelse"));

        // nft's own complaint is quoted, and a failed script changes nothing.
        let err = runtime
            .block_on(run_nft(
                "add table inet warren\ndelete table inet warren\nbogus\n",
            ))
            .unwrap_err();
        assert!(err.starts_with("nft failed (exit status: 1): "), "{err}");
        assert!(err.contains("syntax error"), "{err}");
        assert_eq!(list("inet warren").as_deref(), Some(installed.as_str()));

        // Undo removes the table; a second undo finds nothing and succeeds.
        runtime.block_on(Ops::undo(&journal[0])).unwrap();
        assert_eq!(list("inet warren"), None);
        runtime.block_on(Ops::undo(&journal[0])).unwrap();
        assert_eq!(
            list("inet someoneelse").as_deref(),
            Some(other_before.as_str())
        );
    }

    #[test]
    fn apply_and_undo_in_a_private_network_namespace() {
        let host = netns_inode("/proc/self/ns/net");
        let outcome = std::thread::spawn(move || {
            // SAFETY: unshare(2) with CLONE_NEWNET only moves this thread (and the processes it
            // starts) into a new, empty network namespace; it touches no memory of ours.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let mine = netns_inode("/proc/thread-self/ns/net");
            assert_ne!(mine, host, "still in the host's network namespace");
            life_cycle();
            Ok(())
        })
        .join()
        .unwrap();
        match outcome {
            Ok(()) => {}
            Err(err) if std::env::var_os("CI").is_some() => {
                panic!(
                    "CI runs as root and must run this test; unshare(CLONE_NEWNET) failed: {err}"
                )
            }
            Err(err) => eprintln!("SKIPPED (needs root): unshare(CLONE_NEWNET) failed: {err}"),
        }
    }
}
