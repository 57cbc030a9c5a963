//! `warren-helper demo`: shows a newcomer a working tunnel on one machine, without touching the
//! machine's real network.
//!
//! It owns the whole demo set-up and its removal:
//! 1. checks it runs as root and that `ip` (iproute2) exists;
//! 2. generates two key pairs, creates the network namespace `warren-demo` joined to the current
//!    namespace by a veth pair (`wdemo-host` here, `wdemo-peer` there) with underlay addresses from
//!    198.18.0.0/15 and fd00::/8 only, and writes two wg-quick configurations into a private (0700)
//!    temporary directory;
//! 3. starts the peer (`ip netns exec warren-demo <this exe> up peer.conf --interface wdemo1`) and
//!    the local side (`<this exe> up host.conf --interface wdemo0`) as child processes and waits
//!    for their UAPI sockets in `/var/run/wireguard/`;
//! 4. waits for a handshake (`wg show wdemo0 latest-handshakes`, when `wg` is installed), pings the
//!    peer's tunnel address, prints `wg show wdemo0`, and keeps the tunnel up until ctrl-c/SIGTERM;
//! 5. cleans up on every exit path — success, failure, ctrl-c half-way, even a panic: the children
//!    get SIGTERM by PID (SIGKILL after a timeout), then the veth, the namespace and the temporary
//!    directory are removed. A namespace left by a crashed earlier demo is removed at start.
//!
//! Only relative operations are used (the veth pair and the namespace it creates), so the demo also
//! works inside another namespace (`ip netns exec somens warren-helper demo`), which is how it is
//! tested. Every wait is bounded in time.

/// Runs the demo until ctrl-c or SIGTERM, then removes everything it created.
pub async fn run() -> anyhow::Result<()> {
    imp::run().await
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) async fn run() -> anyhow::Result<()> {
        anyhow::bail!(
            "the demo uses Linux network namespaces and is not available on {}",
            std::env::consts::OS
        )
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use anyhow::{bail, Context as _};
    use std::fs;
    use std::io::{self, Write as _};
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    use std::os::unix::process::CommandExt as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};
    use tokio::signal::unix::{signal, Signal, SignalKind};
    use warren_proto::key::PrivateKey;

    /// The demo's network namespace.
    const NETNS: &str = "warren-demo";
    /// The veth end in the namespace the demo runs in.
    const HOST_VETH: &str = "wdemo-host";
    /// The veth end moved into [`NETNS`].
    const PEER_VETH: &str = "wdemo-peer";
    /// The local tunnel interface.
    const HOST_IF: &str = "wdemo0";
    /// The peer's tunnel interface, inside [`NETNS`].
    const PEER_IF: &str = "wdemo1";

    /// Underlay (veth) addresses: benchmarking (198.18.0.0/15) and unique-local (fd00::/8) only.
    const HOST_UNDERLAY_V4: &str = "198.18.250.1/30";
    const PEER_UNDERLAY_V4: &str = "198.18.250.2/30";
    const HOST_UNDERLAY_V6: &str = "fd00:77::1/64";
    const PEER_UNDERLAY_V6: &str = "fd00:77::2/64";
    /// The peer's endpoint: its underlay address and listen port.
    const PEER_ENDPOINT: &str = "198.18.250.2:51820";
    const PEER_LISTEN_PORT: u16 = 51820;

    /// Tunnel addresses.
    const HOST_TUNNEL_V4: &str = "198.18.251.1/24";
    const PEER_TUNNEL_V4: &str = "198.18.251.2/24";
    const HOST_TUNNEL_V6: &str = "fd00:78::1/64";
    const PEER_TUNNEL_V6: &str = "fd00:78::2/64";
    /// What the user pings.
    const PEER_TUNNEL_IP: &str = "198.18.251.2";
    const PEER_TUNNEL_IP6: &str = "fd00:78::2";

    /// The demo's private directory in the temp dir is `<prefix><pid>-<nanos>`.
    const TEMP_DIR_PREFIX: &str = "warren-demo-";

    /// Where `ip netns` keeps its named namespaces.
    const NETNS_DIR: &str = "/var/run/netns";

    /// Where `up` puts its UAPI socket.
    const UAPI_DIR: &str = "/var/run/wireguard";

    const COMMAND_TIMEOUT_SECS: u64 = 10;
    const SOCKET_TIMEOUT_SECS: u64 = 10;
    const HANDSHAKE_TIMEOUT_SECS: u64 = 10;
    const PING_TIMEOUT_SECS: u64 = 15;
    /// How long a child gets to exit after SIGTERM before SIGKILL.
    const CHILD_EXIT_TIMEOUT_SECS: u64 = 5;
    /// How often the waits above look again.
    const POLL_INTERVAL_MS: u64 = 100;
    /// Lines of a child's log shown when something fails.
    const LOG_TAIL_LINES: usize = 20;

    pub(super) async fn run() -> anyhow::Result<()> {
        preflight().await?;
        // Take over SIGINT/SIGTERM before creating anything, so ctrl-c cannot kill the process
        // between a change and its cleanup.
        let mut shutdown = Shutdown::new()?;
        let mut demo = DemoState::default();

        let mut interrupted = false;
        let outcome = async {
            tokio::select! {
                started = start(&mut demo) => started?,
                signal = shutdown.recv() => {
                    interrupted = true;
                    bail!("interrupted by {signal} during set-up");
                }
            }
            println!();
            println!("The tunnel stays up until you press ctrl-c. Try:");
            println!("    ping {PEER_TUNNEL_IP}");
            println!("    ping {PEER_TUNNEL_IP6}");
            println!("    wg show {HOST_IF}");
            println!("    ip netns exec {NETNS} wg show {PEER_IF}");
            let _ = io::stdout().flush();
            tokio::select! {
                signal = shutdown.recv() => {
                    println!("\nReceived {signal}; stopping the demo.");
                    Ok(())
                }
                exited = demo.watch_children() => Err(exited),
            }
        }
        .await;

        if outcome.is_err() && !interrupted {
            demo.print_log_tails();
        }
        println!("Cleaning up…");
        let problems = tokio::task::spawn_blocking(move || demo.cleanup())
            .await
            .unwrap_or_else(|err| vec![format!("the clean-up task failed: {err}")]);
        for problem in &problems {
            eprintln!("warning: {problem}");
        }
        if problems.is_empty() {
            println!("Removed the namespace {NETNS}, the veth pair and the demo's files.");
        }
        outcome
    }

    /// Root, `ip`, and nothing else running under the demo's names.
    async fn preflight() -> anyhow::Result<()> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            bail!(
                "the demo creates a network namespace and tunnel interfaces, so it must run as \
                 root (try: sudo warren-helper demo)"
            );
        }
        match tokio::process::Command::new("ip").arg("-V").output().await {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => bail!(
                "the demo needs the `ip` command from iproute2, which is not installed \
                 (on Debian/Ubuntu: apt install iproute2)"
            ),
            Err(err) => return Err(err).context("failed to run `ip -V`"),
        }
        for ifname in [HOST_IF, PEER_IF] {
            let path = uapi_socket(ifname);
            if tokio::net::UnixStream::connect(&path).await.is_ok() {
                bail!(
                    "another tunnel named {ifname} is running ({} answers); is another \
                     `warren-helper demo` running? Stop it first",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// Steps 2–4: everything up to "it works". Each resource is recorded in `demo` before or as it
    /// is created, so the caller's clean-up finds it whatever happens.
    async fn start(demo: &mut DemoState) -> anyhow::Result<()> {
        remove_leftovers().await?;

        println!("[1/5] Generating two key pairs and writing the configurations…");
        let host_key = PrivateKey::generate();
        let peer_key = PrivateKey::generate();
        let dir = demo.create_temp_dir()?;
        let host_conf = dir.join("host.conf");
        let peer_conf = dir.join("peer.conf");
        let underlay_v4_host = HOST_UNDERLAY_V4.split('/').next().unwrap_or_default();
        write_private(
            &peer_conf,
            &format!(
                "# The demo peer, inside network namespace {NETNS}.\n\
                 [Interface]\n\
                 PrivateKey = {}\n\
                 Address = {PEER_TUNNEL_V4}, {PEER_TUNNEL_V6}\n\
                 ListenPort = {PEER_LISTEN_PORT}\n\
                 \n\
                 [Peer]\n\
                 # This machine's side ({underlay_v4_host} on the veth).\n\
                 PublicKey = {}\n\
                 AllowedIPs = {}, {}\n",
                peer_key.to_base64(),
                host_key.public_key(),
                host_only(HOST_TUNNEL_V4),
                host_only(HOST_TUNNEL_V6),
            ),
        )?;
        write_private(
            &host_conf,
            &format!(
                "# This machine's side of the demo tunnel.\n\
                 [Interface]\n\
                 PrivateKey = {}\n\
                 Address = {HOST_TUNNEL_V4}, {HOST_TUNNEL_V6}\n\
                 \n\
                 [Peer]\n\
                 # The demo peer in network namespace {NETNS}.\n\
                 PublicKey = {}\n\
                 AllowedIPs = {}, {}\n\
                 Endpoint = {PEER_ENDPOINT}\n\
                 PersistentKeepalive = 25\n",
                host_key.to_base64(),
                peer_key.public_key(),
                host_only(PEER_TUNNEL_V4),
                host_only(PEER_TUNNEL_V6),
            ),
        )?;

        println!(
            "[2/5] Creating network namespace {NETNS}, joined to this one by a veth pair \
             ({HOST_VETH} {HOST_UNDERLAY_V4} <-> {PEER_VETH} {PEER_UNDERLAY_V4})…"
        );
        // Recorded before the command runs: if it is interrupted half-way, clean-up still looks.
        demo.netns = true;
        ip(&["netns", "add", NETNS]).await?;
        demo.veth = true;
        ip(&[
            "link", "add", HOST_VETH, "type", "veth", "peer", "name", PEER_VETH, "netns", NETNS,
        ])
        .await?;
        ip(&["address", "add", HOST_UNDERLAY_V4, "dev", HOST_VETH]).await?;
        ip(&[
            "address",
            "add",
            HOST_UNDERLAY_V6,
            "dev",
            HOST_VETH,
            "nodad",
        ])
        .await?;
        ip(&["link", "set", HOST_VETH, "up"]).await?;
        ip(&["-n", NETNS, "link", "set", "lo", "up"]).await?;
        ip(&[
            "-n",
            NETNS,
            "address",
            "add",
            PEER_UNDERLAY_V4,
            "dev",
            PEER_VETH,
        ])
        .await?;
        ip(&[
            "-n",
            NETNS,
            "address",
            "add",
            PEER_UNDERLAY_V6,
            "dev",
            PEER_VETH,
            "nodad",
        ])
        .await?;
        ip(&["-n", NETNS, "link", "set", PEER_VETH, "up"]).await?;

        println!("[3/5] Starting the peer ({PEER_IF} in {NETNS}) and this side ({HOST_IF})…");
        let exe = std::env::current_exe().context("failed to find this program's path")?;
        let exe = exe
            .to_str()
            .context("this program's path is not valid UTF-8")?
            .to_owned();
        let peer_conf = path_str(&peer_conf)?;
        let host_conf = path_str(&host_conf)?;
        demo.spawn(
            "peer",
            &dir.join("peer.log"),
            "ip",
            &[
                "netns",
                "exec",
                NETNS,
                &exe,
                "up",
                "--foreground",
                &peer_conf,
                "--interface",
                PEER_IF,
            ],
        )?;
        demo.wait_for_socket("peer", PEER_IF).await?;
        demo.spawn(
            "host",
            &dir.join("host.log"),
            &exe,
            &["up", "--foreground", &host_conf, "--interface", HOST_IF],
        )?;
        demo.wait_for_socket("host", HOST_IF).await?;

        println!("[4/5] Waiting for the WireGuard handshake…");
        let have_wg = wg_installed().await;
        if have_wg {
            wait_for_handshake().await?;
        } else {
            println!(
                "      `wg` (wireguard-tools) is not installed, so the handshake cannot be shown; \
                 skipping this step (on Debian/Ubuntu: apt install wireguard-tools)."
            );
        }

        println!("[5/5] Pinging the peer through the tunnel: ping -c 3 -W 1 {PEER_TUNNEL_IP}");
        ping().await?;
        if have_wg {
            println!();
            println!("$ wg show {HOST_IF}");
            let output = command_output("wg", &["show", HOST_IF]).await?;
            print!("{}", String::from_utf8_lossy(&output.stdout));
        }
        Ok(())
    }

    /// Removes what a crashed earlier demo left behind (it was checked that none is running).
    async fn remove_leftovers() -> anyhow::Result<()> {
        let list = command_output("ip", &["netns", "list"]).await?;
        let stale_netns = String::from_utf8_lossy(&list.stdout)
            .lines()
            .any(|line| line.split_whitespace().next() == Some(NETNS));
        if stale_netns {
            println!("Removing the network namespace {NETNS} left behind by an earlier demo.");
            ip(&["netns", "del", NETNS]).await?;
        }
        if link_exists(HOST_VETH).await {
            println!("Removing the interface {HOST_VETH} left behind by an earlier demo.");
            ip(&["link", "del", HOST_VETH]).await?;
        }
        remove_stale_temp_dirs();
        for ifname in [HOST_IF, PEER_IF] {
            let path = uapi_socket(ifname);
            if path.exists() {
                fs::remove_file(&path).with_context(|| {
                    format!("failed to remove the stale socket {}", path.display())
                })?;
            }
        }
        Ok(())
    }

    /// Removes `warren-demo-<pid>-…` directories (they hold throwaway demo keys) of demos whose
    /// process is gone, e.g. after a `kill -9`. Only real directories owned by root are touched.
    fn remove_stale_temp_dirs() {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(TEMP_DIR_PREFIX))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            let ours = entry
                .path()
                .symlink_metadata()
                .is_ok_and(|meta| meta.is_dir() && meta.uid() == 0);
            let running = Path::new("/proc").join(pid.to_string()).exists();
            if ours && !running && pid != std::process::id() {
                println!(
                    "Removing {} left behind by an earlier demo.",
                    entry.path().display()
                );
                if let Err(err) = fs::remove_dir_all(entry.path()) {
                    eprintln!(
                        "warning: failed to remove {}: {err}",
                        entry.path().display()
                    );
                }
            }
        }
    }

    /// Everything the demo created, so it can be removed. Clean-up is idempotent and also runs on
    /// drop (a panic, or the demo future being dropped), so it happens on every exit path.
    #[derive(Default)]
    struct DemoState {
        temp_dir: Option<PathBuf>,
        netns: bool,
        veth: bool,
        children: Vec<(&'static str, Child)>,
        /// UAPI sockets of children started, removed if a child was killed before removing its own.
        sockets: Vec<PathBuf>,
        logs: Vec<(&'static str, PathBuf)>,
    }

    impl DemoState {
        fn create_temp_dir(&mut self) -> anyhow::Result<PathBuf> {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let dir = std::env::temp_dir()
                .join(format!("{TEMP_DIR_PREFIX}{}-{nanos}", std::process::id()));
            // create (not create_all): fails if the path exists, so nobody can prepare it for us.
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("failed to create the directory {}", dir.display()))?;
            self.temp_dir = Some(dir.clone());
            Ok(dir)
        }

        /// Starts `program args…` with its output going to `log`, in its own process group (so a
        /// terminal's ctrl-c reaches only the demo, which then stops it in order), and with SIGTERM
        /// as its parent-death signal (so it stops even if the demo is killed outright).
        fn spawn(
            &mut self,
            label: &'static str,
            log: &Path,
            program: &str,
            args: &[&str],
        ) -> anyhow::Result<()> {
            let out = fs::File::create(log)
                .with_context(|| format!("failed to create the log file {}", log.display()))?;
            let err = out
                .try_clone()
                .context("failed to duplicate the log file handle")?;
            let mut command = std::process::Command::new(program);
            command
                .args(args)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
            // which is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::last_os_error())
                    }
                });
            }
            let child = command.spawn().with_context(|| {
                format!("failed to start {label}: {program} {}", args.join(" "))
            })?;
            self.children.push((label, child));
            self.logs.push((label, log.to_owned()));
            Ok(())
        }

        /// Waits until `ifname`'s UAPI socket accepts connections, failing early if the child
        /// labelled `label` exits.
        async fn wait_for_socket(&mut self, label: &str, ifname: &str) -> anyhow::Result<()> {
            let path = uapi_socket(ifname);
            self.sockets.push(path.clone());
            let deadline = Instant::now() + Duration::from_secs(SOCKET_TIMEOUT_SECS);
            loop {
                if tokio::net::UnixStream::connect(&path).await.is_ok() {
                    return Ok(());
                }
                if let Some((_, child)) = self.children.iter_mut().find(|(l, _)| *l == label) {
                    if let Some(status) = child.try_wait().context("failed to check a child")? {
                        bail!("the {label} side ({ifname}) exited before it was ready ({status})");
                    }
                }
                if Instant::now() >= deadline {
                    bail!(
                        "the {label} side ({ifname}) did not create {} within {SOCKET_TIMEOUT_SECS} s",
                        path.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
            }
        }

        /// Resolves (with an error) only when a child exits on its own.
        async fn watch_children(&mut self) -> anyhow::Error {
            loop {
                for (label, child) in &mut self.children {
                    match child.try_wait() {
                        Ok(Some(status)) => {
                            return anyhow::anyhow!(
                                "the {label} side exited unexpectedly ({status})"
                            )
                        }
                        Ok(None) => {}
                        Err(err) => {
                            return anyhow::anyhow!("failed to check the {label} side: {err}")
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS * 5)).await;
            }
        }

        fn print_log_tails(&self) {
            for (label, path) in &self.logs {
                let Ok(text) = fs::read_to_string(path) else {
                    continue;
                };
                let lines: Vec<&str> = text.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                eprintln!("--- last lines of the {label} side's output ---");
                for line in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
                    eprintln!("{line}");
                }
            }
        }

        /// Stops the children, removes the veth pair, the namespace and the files. Returns what
        /// could not be done; never panics. Safe to call more than once.
        fn cleanup(&mut self) -> Vec<String> {
            let mut problems = Vec::new();
            stop_children(&mut self.children, &mut problems);
            self.children.clear();
            for path in self.sockets.drain(..) {
                let stale =
                    path.exists() && std::os::unix::net::UnixStream::connect(&path).is_err();
                if stale {
                    if let Err(err) = fs::remove_file(&path) {
                        problems.push(format!("failed to remove {}: {err}", path.display()));
                    }
                }
            }
            if std::mem::take(&mut self.veth) {
                let _ = run_bounded("ip", &["link", "del", HOST_VETH]);
            }
            // (Checked first: the set-up may have been interrupted before `ip netns add` ran.)
            let netns_exists = Path::new(NETNS_DIR).join(NETNS).exists();
            if std::mem::take(&mut self.netns) && netns_exists {
                if let Err(err) = run_bounded("ip", &["netns", "del", NETNS]) {
                    problems.push(format!(
                        "failed to delete the network namespace {NETNS}: {err}"
                    ));
                }
            }
            if let Some(dir) = self.temp_dir.take() {
                if let Err(err) = fs::remove_dir_all(&dir) {
                    problems.push(format!("failed to remove {}: {err}", dir.display()));
                }
            }
            self.logs.clear();
            problems
        }
    }

    impl Drop for DemoState {
        fn drop(&mut self) {
            for problem in self.cleanup() {
                eprintln!("warning: {problem}");
            }
        }
    }

    /// SIGTERM to every running child by PID, a bounded wait, then SIGKILL for the rest.
    fn stop_children(children: &mut [(&'static str, Child)], problems: &mut Vec<String>) {
        for (label, child) in children.iter_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                let Ok(pid) = libc::pid_t::try_from(child.id()) else {
                    continue;
                };
                // SAFETY: kill(2) takes no pointers; `pid` is our own child, not yet reaped, so the
                // PID cannot have been reused.
                if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
                    problems.push(format!(
                        "failed to send SIGTERM to the {label} side (pid {pid}): {}",
                        io::Error::last_os_error()
                    ));
                }
            }
        }
        let all_exited = |children: &mut [(&'static str, Child)]| {
            children
                .iter_mut()
                .all(|(_, child)| !matches!(child.try_wait(), Ok(None)))
        };
        if wait_until(Duration::from_secs(CHILD_EXIT_TIMEOUT_SECS), || {
            all_exited(children)
        }) {
            return;
        }
        for (label, child) in children.iter_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                problems.push(format!(
                    "the {label} side (pid {}) did not stop within {CHILD_EXIT_TIMEOUT_SECS} s of \
                     SIGTERM; killed it",
                    child.id()
                ));
                let _ = child.kill();
            }
        }
        if !wait_until(Duration::from_secs(CHILD_EXIT_TIMEOUT_SECS), || {
            all_exited(children)
        }) {
            problems.push("a child process survived SIGKILL".to_owned());
        }
    }

    /// Polls `done` until it returns true (→ true) or `timeout` passes (→ false).
    fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS / 2));
        }
    }

    /// Runs a command synchronously (for clean-up), bounded by [`COMMAND_TIMEOUT_SECS`].
    fn run_bounded(program: &str, args: &[&str]) -> Result<(), String> {
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("failed to run {program}: {err}"))?;
        let finished = wait_until(Duration::from_secs(COMMAND_TIMEOUT_SECS), || {
            !matches!(child.try_wait(), Ok(None))
        });
        if !finished {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{program} {}` timed out", args.join(" ")));
        }
        let output = child.wait_with_output().map_err(|err| err.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    /// Runs `ip args…`, bounded in time; fails with `ip`'s own message.
    async fn ip(args: &[&str]) -> anyhow::Result<()> {
        let output = command_output("ip", args).await?;
        if !output.status.success() {
            bail!(
                "`ip {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Runs a command to completion with its output captured, bounded by [`COMMAND_TIMEOUT_SECS`].
    async fn command_output(program: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let output = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(COMMAND_TIMEOUT_SECS), output)
            .await
            .with_context(|| format!("`{program} {}` timed out", args.join(" ")))?
            .with_context(|| format!("failed to run `{program} {}`", args.join(" ")))
    }

    async fn link_exists(ifname: &str) -> bool {
        matches!(command_output("ip", &["link", "show", "dev", ifname]).await, Ok(o) if o.status.success())
    }

    async fn wg_installed() -> bool {
        tokio::process::Command::new("wg")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok()
    }

    /// Polls `wg show <HOST_IF> latest-handshakes` until a handshake time appears. Not finding one
    /// is only a warning: the ping that follows starts a handshake too.
    async fn wait_for_handshake() -> anyhow::Result<()> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(HANDSHAKE_TIMEOUT_SECS);
        loop {
            let output = command_output("wg", &["show", HOST_IF, "latest-handshakes"]).await?;
            let handshake = String::from_utf8_lossy(&output.stdout).lines().any(|line| {
                line.split_whitespace()
                    .last()
                    .and_then(|t| t.parse::<u64>().ok())
                    .unwrap_or(0)
                    > 0
            });
            if handshake {
                println!(
                    "      Handshake completed after {:.1} s.",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if Instant::now() >= deadline {
                println!(
                    "      No handshake within {HANDSHAKE_TIMEOUT_SECS} s yet; the ping below \
                     will start one."
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS * 2)).await;
        }
    }

    /// `ping -c 3 -W 1 <peer>` with its output shown; a missing `ping` is skipped with a note.
    async fn ping() -> anyhow::Result<()> {
        let status = tokio::process::Command::new("ping")
            .args(["-c", "3", "-W", "1", PEER_TUNNEL_IP])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .status();
        match tokio::time::timeout(Duration::from_secs(PING_TIMEOUT_SECS), status).await {
            Err(_) => bail!("ping {PEER_TUNNEL_IP} did not finish within {PING_TIMEOUT_SECS} s"),
            Ok(Err(err)) if err.kind() == io::ErrorKind::NotFound => {
                println!(
                    "      `ping` is not installed; skipping this step (on Debian/Ubuntu: \
                     apt install iputils-ping)."
                );
                Ok(())
            }
            Ok(Err(err)) => Err(err).context("failed to run ping"),
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => bail!("ping {PEER_TUNNEL_IP} through the tunnel failed ({status})"),
        }
    }

    /// SIGINT (ctrl-c) or SIGTERM, whichever comes first.
    struct Shutdown {
        interrupt: Signal,
        terminate: Signal,
    }

    impl Shutdown {
        fn new() -> anyhow::Result<Self> {
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).context("failed to handle SIGINT")?,
                terminate: signal(SignalKind::terminate()).context("failed to handle SIGTERM")?,
            })
        }

        async fn recv(&mut self) -> &'static str {
            tokio::select! {
                _ = self.interrupt.recv() => "ctrl-c",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
    }

    fn uapi_socket(ifname: &str) -> PathBuf {
        Path::new(UAPI_DIR).join(format!("{ifname}.sock"))
    }

    /// `198.18.251.2/24` → `198.18.251.2/32`: the single address, as AllowedIPs.
    fn host_only(address: &str) -> String {
        let ip = address.split('/').next().unwrap_or(address);
        let bits = if ip.contains(':') { 128 } else { 32 };
        format!("{ip}/{bits}")
    }

    fn path_str(path: &Path) -> anyhow::Result<String> {
        path.to_str()
            .map(str::to_owned)
            .with_context(|| format!("the path {} is not valid UTF-8", path.display()))
    }

    /// Writes a file only root can read (it holds a private key).
    fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        file.write_all(contents.as_bytes())
            .with_context(|| format!("failed to write {}", path.display()))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn demo_addresses_stay_in_the_test_ranges() {
            let v4: ipnet::Ipv4Net = "198.18.0.0/15".parse().unwrap();
            let v6: ipnet::Ipv6Net = "fd00::/8".parse().unwrap();
            for address in [
                HOST_UNDERLAY_V4,
                PEER_UNDERLAY_V4,
                HOST_TUNNEL_V4,
                PEER_TUNNEL_V4,
                HOST_UNDERLAY_V6,
                PEER_UNDERLAY_V6,
                HOST_TUNNEL_V6,
                PEER_TUNNEL_V6,
            ] {
                match address.parse::<ipnet::IpNet>().unwrap() {
                    ipnet::IpNet::V4(net) => assert!(v4.contains(&net), "{address}"),
                    ipnet::IpNet::V6(net) => assert!(v6.contains(&net), "{address}"),
                }
            }
            let endpoint: std::net::SocketAddr = PEER_ENDPOINT.parse().unwrap();
            assert_eq!(endpoint.port(), PEER_LISTEN_PORT);
            assert_eq!(format!("{}/30", endpoint.ip()), PEER_UNDERLAY_V4);
            assert_eq!(host_only(PEER_TUNNEL_V4), format!("{PEER_TUNNEL_IP}/32"));
            assert_eq!(host_only(PEER_TUNNEL_V6), format!("{PEER_TUNNEL_IP6}/128"));
        }

        #[test]
        fn wait_until_is_bounded() {
            let started = Instant::now();
            assert!(!wait_until(Duration::from_millis(120), || false));
            assert!(started.elapsed() < Duration::from_secs(2));
            assert!(wait_until(Duration::from_secs(5), || true));
        }

        #[test]
        fn cleanup_of_nothing_does_nothing() {
            assert!(DemoState::default().cleanup().is_empty());
        }
    }
}
