//! `warren-helper demo`: shows a newcomer a working tunnel on one machine, without touching the
//! machine's real network.
//!
//! It owns the whole demo set-up and its removal:
//! 1. checks it runs as root and that `ip` (iproute2) exists (and, with `--peer-only`, that the
//!    client file can be written and its owner exists) before changing anything;
//! 2. generates two key pairs (`--peer-only`: loads them from its key file, or creates it),
//!    creates the network namespace `warren-demo` joined to the current namespace by a veth pair
//!    (`wdemo-host` here, `wdemo-peer` there) with underlay addresses from 198.18.0.0/15 and
//!    fd00::/8 only, and writes the wg-quick configurations into a private (0700) temporary
//!    directory;
//! 3. starts the peer (`ip netns exec warren-demo <this exe> up peer.conf --interface wdemo1`) and
//!    the local side (`<this exe> up host.conf --interface wdemo0`) as child processes and waits
//!    for their UAPI sockets: the local side's in `/var/run/wireguard/`, as any tunnel's; the
//!    peer's in the private directory `/run/warren-demo/` (0700), which the peer sees at
//!    `/var/run/wireguard` in a mount namespace of its own — so the `wg show` of this machine
//!    lists only interfaces its `ip link` shows, and the peer is shown with
//!    `nsenter --target <peer pid> --mount --net wg show wdemo1`;
//! 4. waits for a handshake (`wg show wdemo0 latest-handshakes`, when `wg` is installed), pings the
//!    peer's tunnel address, prints `wg show wdemo0`, and keeps the tunnel up until ctrl-c/SIGTERM;
//! 5. cleans up on every exit path — success, failure, ctrl-c half-way, even a panic: the children
//!    get SIGTERM by PID (SIGKILL after a timeout), then the veth, the namespace, the temporary
//!    directory and the client file are removed. A namespace left by a crashed earlier demo is
//!    removed at start.
//!
//! [`Mode::PeerOnly`] (`demo --peer-only --client-conf PATH`) stops after starting the peer: instead
//! of the local side it writes the local side's configuration to PATH (mode 0600, owned by
//! `--owner`), last, atomically, so a file at PATH means the peer answers. The desktop app imports
//! that file and brings the tunnel up through the daemon; `scripts/run.sh` runs it that way. Its
//! two keys live in a root-only key file between runs (the only thing it keeps), so a tunnel the
//! app imported on an earlier run reaches the peer of the next one.
//!
//! Only relative operations are used (the veth pair and the namespace it creates), so the demo also
//! works inside another namespace (`ip netns exec somens warren-helper demo`), which is how it is
//! tested. Every wait is bounded in time.

use std::path::PathBuf;

/// Which demo to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The peer, a tunnel to it from here, a ping and `wg show`: all in this terminal.
    Full,
    /// Only the peer, plus the client configuration for someone else (the app) to bring up.
    PeerOnly(PeerOnly),
}

/// What [`Mode::PeerOnly`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // read by the Linux demo only
pub struct PeerOnly {
    /// Where to write the client's wg-quick file; must not exist yet.
    pub client_conf: PathBuf,
    /// The user (by name) who gets the client file; root when `None`.
    pub owner: Option<String>,
    /// The demo's two keys, kept between runs (root only).
    pub key_file: PathBuf,
}

/// Runs the demo until ctrl-c or SIGTERM, then removes everything it created.
pub async fn run(mode: Mode) -> anyhow::Result<()> {
    imp::run(mode).await
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) async fn run(_mode: super::Mode) -> anyhow::Result<()> {
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
    use std::os::unix::fs::DirBuilderExt as _;
    use std::os::unix::process::CommandExt as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};
    use tokio::signal::unix::{signal, Signal, SignalKind};
    use warren_proto::key::PrivateKey;

    use super::{Mode, PeerOnly};

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

    // Where `ip netns` keeps its named namespaces; where `up` puts its UAPI socket (and where
    // `wg` looks); the peer's own UAPI directory, bind-mounted over that in its mount namespace.
    use crate::sys::paths::{
        DEMO_PEER_UAPI_DIR as PEER_UAPI_DIR, NETNS_DIR, UAPI_SOCKET_DIR as UAPI_DIR,
    };
    use crate::sys::{write_private_atomically, PrivateWrite};

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

    pub(super) async fn run(mode: Mode) -> anyhow::Result<()> {
        let peer_only = match mode {
            Mode::Full => None,
            Mode::PeerOnly(options) => Some(options),
        };
        let owner = preflight(peer_only.as_ref()).await?;
        // Take over SIGINT/SIGTERM before creating anything, so ctrl-c cannot kill the process
        // between a change and its cleanup.
        let mut shutdown = Shutdown::new()?;
        let mut demo = DemoState::default();

        let mut interrupted = false;
        let outcome = async {
            tokio::select! {
                started = async {
                    match &peer_only {
                        None => start(&mut demo).await,
                        Some(options) => start_peer_only(&mut demo, options, owner).await,
                    }
                } => started?,
                signal = shutdown.recv() => {
                    interrupted = true;
                    bail!("interrupted by {signal} during set-up");
                }
            }
            println!();
            match &peer_only {
                None => {
                    println!("The tunnel stays up until you press ctrl-c. Try:");
                    println!("    ping {PEER_TUNNEL_IP}");
                    println!("    ping {PEER_TUNNEL_IP6}");
                    println!("    wg show {HOST_IF}");
                }
                Some(options) => {
                    println!(
                        "The demo peer is ready at {PEER_ENDPOINT}; its client configuration is \
                         {}. Import it in the desktop app (or: warren-helper up {}), connect, \
                         then ping {PEER_TUNNEL_IP}.",
                        options.client_conf.display(),
                        options.client_conf.display()
                    );
                    println!("The peer stays up until you press ctrl-c (or send SIGTERM).");
                }
            }
            if let Some(pid) = demo.peer_pid() {
                println!("    nsenter --target {pid} --mount --net wg show {PEER_IF}");
            }
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

    /// Root, `ip`, nothing else running under the demo's names, and for `--peer-only` a client
    /// file that can be written for an owner who exists (returned). Changes nothing.
    async fn preflight(peer_only: Option<&PeerOnly>) -> anyhow::Result<Option<Owner>> {
        if crate::sys::euid() != 0 {
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
        let sockets: &[(&str, &str)] = if peer_only.is_some() {
            &[(PEER_UAPI_DIR, PEER_IF)]
        } else {
            &[(UAPI_DIR, HOST_IF), (PEER_UAPI_DIR, PEER_IF)]
        };
        for &(dir, ifname) in sockets {
            let path = uapi_socket(dir, ifname);
            if tokio::net::UnixStream::connect(&path).await.is_ok() {
                bail!(
                    "another tunnel named {ifname} is running ({} answers); is another \
                     `warren-helper demo` running? Stop it first",
                    path.display()
                );
            }
        }
        let Some(options) = peer_only else {
            return Ok(None);
        };
        check_client_conf_path(&options.client_conf)?;
        options
            .owner
            .as_deref()
            .map(Owner::lookup)
            .transpose()
            .context("failed to check --owner")
    }

    /// The client file must be new (never overwrite anything), named like a tunnel (the app names
    /// the tunnel after it), in a directory that exists.
    fn check_client_conf_path(path: &Path) -> anyhow::Result<()> {
        if path.extension().and_then(|e| e.to_str()) != Some("conf") {
            bail!(
                "--client-conf {}: the file name must end in .conf (the app imports .conf files)",
                path.display()
            );
        }
        warren_proto::ipc::TunnelName::from_conf_path(path).with_context(|| {
            format!(
                "--client-conf {}: the app names the tunnel after the file",
                path.display()
            )
        })?;
        if path.symlink_metadata().is_ok() {
            bail!(
                "--client-conf {}: the file already exists; the demo writes a new one (remove it \
                 or choose another path)",
                path.display()
            );
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !parent.is_dir() {
            bail!(
                "--client-conf {}: the directory {} does not exist",
                path.display(),
                parent.display()
            );
        }
        Ok(())
    }

    /// Step 2, shared by both modes: the namespace and the veth pair with its addresses.
    async fn create_underlay(demo: &mut DemoState) -> anyhow::Result<()> {
        // Recorded before the command runs: if it is interrupted half-way, clean-up still looks.
        demo.netns = true;
        ip(&["netns", "add", NETNS])
            .await
            .context("failed to create the demo's network namespace")?;
        demo.veth = true;
        ip(&[
            "link", "add", HOST_VETH, "type", "veth", "peer", "name", PEER_VETH, "netns", NETNS,
        ])
        .await
        .context("failed to create the demo's veth pair")?;
        let steps: [&[&str]; 7] = [
            &["address", "add", HOST_UNDERLAY_V4, "dev", HOST_VETH],
            &[
                "address",
                "add",
                HOST_UNDERLAY_V6,
                "dev",
                HOST_VETH,
                "nodad",
            ],
            &["link", "set", HOST_VETH, "up"],
            &["-n", NETNS, "link", "set", "lo", "up"],
            &[
                "-n",
                NETNS,
                "address",
                "add",
                PEER_UNDERLAY_V4,
                "dev",
                PEER_VETH,
            ],
            &[
                "-n",
                NETNS,
                "address",
                "add",
                PEER_UNDERLAY_V6,
                "dev",
                PEER_VETH,
                "nodad",
            ],
            &["-n", NETNS, "link", "set", PEER_VETH, "up"],
        ];
        for args in steps {
            ip(args)
                .await
                .context("failed to configure the demo's veth pair")?;
        }
        Ok(())
    }

    /// Step 3's first half, shared by both modes: the peer in [`NETNS`], with its UAPI socket in
    /// [`PEER_UAPI_DIR`], until that answers.
    async fn start_peer(demo: &mut DemoState, dir: &Path, peer_conf: &Path) -> anyhow::Result<()> {
        let exe = own_exe()?;
        let peer_conf = path_str(peer_conf)?;
        demo.create_peer_uapi_dir()?;
        demo.spawn(
            "peer",
            &dir.join("peer.log"),
            Some(Path::new(PEER_UAPI_DIR)),
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
        demo.wait_for_socket("peer", &uapi_socket(PEER_UAPI_DIR, PEER_IF))
            .await
    }

    fn own_exe() -> anyhow::Result<String> {
        let exe = std::env::current_exe().context("failed to find this program's path")?;
        Ok(exe
            .to_str()
            .context("this program's path is not valid UTF-8")?
            .to_owned())
    }

    /// Steps 2–4: everything up to "it works". Each resource is recorded in `demo` before or as it
    /// is created, so the caller's clean-up finds it whatever happens.
    async fn start(demo: &mut DemoState) -> anyhow::Result<()> {
        remove_leftovers().await?;

        println!("[1/5] Generating two key pairs and writing the configurations…");
        let keys = DemoKeys::generate();
        let dir = demo.create_temp_dir()?;
        let host_conf = dir.join("host.conf");
        let peer_conf = dir.join("peer.conf");
        write_private(&peer_conf, &peer_conf_text(&keys))?;
        write_private(&host_conf, &client_conf_text(&keys))?;

        println!(
            "[2/5] Creating network namespace {NETNS}, joined to this one by a veth pair \
             ({HOST_VETH} {HOST_UNDERLAY_V4} <-> {PEER_VETH} {PEER_UNDERLAY_V4})…"
        );
        create_underlay(demo).await?;

        println!("[3/5] Starting the peer ({PEER_IF} in {NETNS}) and this side ({HOST_IF})…");
        start_peer(demo, &dir, &peer_conf).await?;
        let exe = own_exe()?;
        let host_conf = path_str(&host_conf)?;
        demo.spawn(
            "host",
            &dir.join("host.log"),
            None,
            &exe,
            &["up", "--foreground", &host_conf, "--interface", HOST_IF],
        )?;
        demo.wait_for_socket("host", &uapi_socket(UAPI_DIR, HOST_IF))
            .await?;

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

    /// `--peer-only`: the keys, the namespace and veth, the peer, then (last) the client file.
    async fn start_peer_only(
        demo: &mut DemoState,
        options: &PeerOnly,
        owner: Option<Owner>,
    ) -> anyhow::Result<()> {
        remove_leftovers().await?;

        println!(
            "[1/4] Loading the demo's keys from {} (created on the first run)…",
            options.key_file.display()
        );
        let keys = DemoKeys::load_or_create(&options.key_file)?;
        let dir = demo.create_temp_dir()?;
        let peer_conf = dir.join("peer.conf");
        write_private(&peer_conf, &peer_conf_text(&keys))?;

        println!(
            "[2/4] Creating network namespace {NETNS}, joined to this one by a veth pair \
             ({HOST_VETH} {HOST_UNDERLAY_V4} <-> {PEER_VETH} {PEER_UNDERLAY_V4})…"
        );
        create_underlay(demo).await?;

        println!("[3/4] Starting the peer ({PEER_IF} in {NETNS}, listening on {PEER_ENDPOINT})…");
        start_peer(demo, &dir, &peer_conf).await?;

        println!(
            "[4/4] Writing the client configuration {}{}…",
            options.client_conf.display(),
            owner
                .as_ref()
                .map(|o| format!(" (owner {})", o.name))
                .unwrap_or_default()
        );
        let written = write_client_conf(
            &options.client_conf,
            &client_conf_text(&keys),
            owner.as_ref(),
        )
        .context("failed to write the client configuration")?;
        demo.client_conf = Some(written);
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
        for (dir, ifname) in [(UAPI_DIR, HOST_IF), (PEER_UAPI_DIR, PEER_IF)] {
            let path = uapi_socket(dir, ifname);
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
        /// [`PEER_UAPI_DIR`], once created.
        peer_uapi_dir: bool,
        logs: Vec<(&'static str, PathBuf)>,
        /// `--peer-only`'s client file, once written.
        client_conf: Option<WrittenFile>,
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

        /// Creates [`PEER_UAPI_DIR`] (0700 root) and the mount point [`UAPI_DIR`]. An existing
        /// one must be a real directory.
        fn create_peer_uapi_dir(&mut self) -> anyhow::Result<()> {
            use std::os::unix::fs::PermissionsExt as _;
            self.peer_uapi_dir = true;
            let dir = Path::new(PEER_UAPI_DIR);
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    if !dir.symlink_metadata().is_ok_and(|meta| meta.is_dir()) {
                        bail!("{PEER_UAPI_DIR} exists and is not a directory; remove it");
                    }
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("failed to create {PEER_UAPI_DIR}"))
                }
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("failed to set the mode of {PEER_UAPI_DIR}"))?;
            fs::create_dir_all(UAPI_DIR).with_context(|| format!("failed to create {UAPI_DIR}"))
        }

        /// Starts `program args…` with its output going to `log`, in its own process group (so a
        /// terminal's ctrl-c reaches only the demo, which then stops it in order), and with SIGTERM
        /// as its parent-death signal (so it stops even if the demo is killed outright). With
        /// `uapi_dir`, the child gets a mount namespace of its own in which `uapi_dir` is mounted
        /// at [`UAPI_DIR`].
        fn spawn(
            &mut self,
            label: &'static str,
            log: &Path,
            uapi_dir: Option<&Path>,
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
            let private_mount = uapi_dir
                .map(|dir| -> anyhow::Result<_> {
                    let c_path = |path: &Path| {
                        std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                            .with_context(|| format!("{} contains a NUL byte", path.display()))
                    };
                    Ok((c_path(dir)?, c_path(Path::new(UAPI_DIR))?))
                })
                .transpose()?;
            // SAFETY: the closure runs in the forked child before exec and only makes system calls
            // (prctl(2), unshare(2), mount(2)), which are async-signal-safe, on C strings made
            // before the fork; it allocates nothing and touches no other memory of the parent.
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    if let Some((source, target)) = &private_mount {
                        // A mount namespace of its own, private so nothing propagates back, in
                        // which the private directory stands at the UAPI directory.
                        if libc::unshare(libc::CLONE_NEWNS) != 0
                            || libc::mount(
                                std::ptr::null(),
                                c"/".as_ptr(),
                                std::ptr::null(),
                                libc::MS_REC | libc::MS_PRIVATE,
                                std::ptr::null(),
                            ) != 0
                            || libc::mount(
                                source.as_ptr(),
                                target.as_ptr(),
                                std::ptr::null(),
                                libc::MS_BIND,
                                std::ptr::null(),
                            ) != 0
                        {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
            let child = command.spawn().with_context(|| {
                format!("failed to start {label}: {program} {}", args.join(" "))
            })?;
            self.children.push((label, child));
            self.logs.push((label, log.to_owned()));
            Ok(())
        }

        /// The peer's process id (`ip netns exec` execs the peer in the same process).
        fn peer_pid(&self) -> Option<u32> {
            self.children
                .iter()
                .find(|(label, _)| *label == "peer")
                .map(|(_, child)| child.id())
        }

        /// Waits until the UAPI socket `path` accepts connections, failing early if the child
        /// labelled `label` exits.
        async fn wait_for_socket(&mut self, label: &str, path: &Path) -> anyhow::Result<()> {
            let path = path.to_owned();
            self.sockets.push(path.clone());
            let deadline = Instant::now() + Duration::from_secs(SOCKET_TIMEOUT_SECS);
            loop {
                if tokio::net::UnixStream::connect(&path).await.is_ok() {
                    return Ok(());
                }
                if let Some((_, child)) = self.children.iter_mut().find(|(l, _)| *l == label) {
                    if let Some(status) = child.try_wait().context("failed to check a child")? {
                        bail!("the {label} side exited before it was ready ({status})");
                    }
                }
                if Instant::now() >= deadline {
                    bail!(
                        "the {label} side did not create {} within {SOCKET_TIMEOUT_SECS} s",
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
            // First, so nobody imports a configuration for a peer that is going away.
            if let Some(file) = self.client_conf.take() {
                if let Err(problem) = file.remove() {
                    problems.push(problem);
                }
            }
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
            if std::mem::take(&mut self.peer_uapi_dir) {
                // Only if empty: the peer removed its socket, or the loop above did.
                match fs::remove_dir(PEER_UAPI_DIR) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => problems.push(format!("failed to remove {PEER_UAPI_DIR}: {err}")),
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

    fn uapi_socket(dir: &str, ifname: &str) -> PathBuf {
        Path::new(dir).join(format!("{ifname}.sock"))
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

    /// Writes a new file only root can read (it holds a private key); never replaces one.
    fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
        PrivateWrite {
            no_replace: true,
            ..PrivateWrite::default()
        }
        .write(path, contents.as_bytes())
        .map(drop)
        .with_context(|| format!("failed to write {}", path.display()))
    }

    /// The demo's two key pairs: the peer's, and this side's (the client's).
    struct DemoKeys {
        peer: PrivateKey,
        client: PrivateKey,
    }

    /// The key file's two lines, `Name = base64`.
    const KEY_FILE_PEER: &str = "PeerPrivateKey";
    const KEY_FILE_CLIENT: &str = "ClientPrivateKey";

    impl DemoKeys {
        fn generate() -> Self {
            Self {
                peer: PrivateKey::generate(),
                client: PrivateKey::generate(),
            }
        }

        /// The key file's text.
        fn to_text(&self) -> String {
            format!(
                "# warren-helper demo --peer-only: the demo's throwaway keys, kept so that a \
                 tunnel\n# imported from an earlier run keeps working. Delete this file for new \
                 keys.\n{KEY_FILE_PEER} = {}\n{KEY_FILE_CLIENT} = {}\n",
                self.peer.to_base64(),
                self.client.to_base64()
            )
        }

        /// Reads [`DemoKeys::to_text`]'s format; `None` unless both keys are there and valid.
        fn parse(text: &str) -> Option<Self> {
            let (mut peer, mut client) = (None, None);
            for line in text.lines() {
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                let key = value.trim().parse::<PrivateKey>().ok();
                match name.trim() {
                    KEY_FILE_PEER => peer = key,
                    KEY_FILE_CLIENT => client = key,
                    _ => {}
                }
            }
            Some(Self {
                peer: peer?,
                client: client?,
            })
        }

        /// The keys in `path`, or new ones written there (mode 0600, directory 0700) when the
        /// file is missing or unusable. A file that is not root's and private is not trusted.
        fn load_or_create(path: &Path) -> anyhow::Result<Self> {
            use std::os::unix::fs::MetadataExt as _;
            match fs::symlink_metadata(path) {
                Ok(meta) => {
                    let me = crate::sys::euid();
                    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 {
                        bail!(
                            "the demo's key file {} is not a private file of root's (mode 0600); \
                             remove it and run the demo again",
                            path.display()
                        );
                    }
                    let text = fs::read_to_string(path)
                        .map(zeroize::Zeroizing::new)
                        .with_context(|| format!("failed to read {}", path.display()))?;
                    if let Some(keys) = Self::parse(&text) {
                        return Ok(keys);
                    }
                    println!(
                        "      {} does not hold two valid keys; replacing it with new ones.",
                        path.display()
                    );
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("failed to check {}", path.display()))
                }
            }
            let keys = Self::generate();
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .with_context(|| format!("failed to create the directory {}", dir.display()))?;
            }
            let text = zeroize::Zeroizing::new(keys.to_text());
            write_private_atomically(path, text.as_bytes())
                .with_context(|| format!("failed to write {}", path.display()))?;
            Ok(keys)
        }
    }

    /// The peer's wg-quick configuration (inside [`NETNS`]).
    fn peer_conf_text(keys: &DemoKeys) -> String {
        let underlay_v4_host = HOST_UNDERLAY_V4.split('/').next().unwrap_or_default();
        format!(
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
            keys.peer.to_base64(),
            keys.client.public_key(),
            host_only(HOST_TUNNEL_V4),
            host_only(HOST_TUNNEL_V6),
        )
    }

    /// This machine's side: the wg-quick configuration `--peer-only` hands to the app. A split
    /// tunnel to the peer's two tunnel addresses only; no DNS, no default route.
    fn client_conf_text(keys: &DemoKeys) -> String {
        format!(
            "# Warren's local demo: this machine's side of a tunnel to a Warren peer in the\n\
             # network namespace {NETNS} on this same machine (made by `warren-helper demo`).\n\
             # Connected, `ping {PEER_TUNNEL_IP}` goes through it. Only 198.18.0.0/15 and fd00::/8.\n\
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
            keys.client.to_base64(),
            keys.peer.public_key(),
            host_only(PEER_TUNNEL_V4),
            host_only(PEER_TUNNEL_V6),
        )
    }

    /// Who gets the client file.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Owner {
        name: String,
        uid: libc::uid_t,
        gid: libc::gid_t,
    }

    impl Owner {
        /// The user `name` by the password database (`getpwnam_r`).
        fn lookup(name: &str) -> anyhow::Result<Self> {
            let found = crate::daemon::auth::user_by_name(name)
                .with_context(|| format!("failed to look up the user {name}"))?;
            let Some((uid, gid)) = found else {
                bail!("no user named {name} (--owner)");
            };
            Ok(Self {
                name: name.to_owned(),
                uid,
                gid,
            })
        }
    }

    /// A file the demo wrote outside its temporary directory, removed at clean-up only if it is
    /// still the same file (nobody replaced it meanwhile).
    #[derive(Debug)]
    struct WrittenFile {
        path: PathBuf,
        dev: u64,
        ino: u64,
    }

    /// Writes `text` to `path` as a new file, mode 0600, owned by `owner`, atomically (whoever
    /// waits for `path` never reads half of it); a file already at `path` is never replaced.
    fn write_client_conf(
        path: &Path,
        text: &str,
        owner: Option<&Owner>,
    ) -> anyhow::Result<WrittenFile> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = PrivateWrite {
            owner: owner.map(|owner| (owner.uid, owner.gid)),
            no_replace: true,
        }
        .write(path, text.as_bytes())
        .map_err(|err| match err.kind() {
            io::ErrorKind::AlreadyExists => {
                anyhow::anyhow!("{} appeared meanwhile; not replacing it", path.display())
            }
            _ => anyhow::Error::new(err).context(match owner {
                Some(owner) => format!("failed to write {} for {}", path.display(), owner.name),
                None => format!("failed to write {}", path.display()),
            }),
        })?;
        Ok(WrittenFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    impl WrittenFile {
        fn remove(self) -> Result<(), String> {
            use std::os::unix::fs::MetadataExt as _;
            match fs::symlink_metadata(&self.path) {
                Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                    fs::remove_file(&self.path)
                        .map_err(|err| format!("failed to remove {}: {err}", self.path.display()))
                }
                // Gone already, or replaced by someone else's file: not ours to remove.
                _ => Ok(()),
            }
        }
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

        /// A fresh private directory for one test.
        fn scratch(name: &str) -> PathBuf {
            let dir = std::env::temp_dir()
                .join(format!("warren-demo-test-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).unwrap();
            dir
        }

        #[test]
        fn the_client_conf_is_a_split_tunnel_to_the_peer_and_matches_its_keys() {
            let keys = DemoKeys::generate();
            let client = warren_proto::config::parse(&client_conf_text(&keys), None).unwrap();
            let peer = warren_proto::config::parse(&peer_conf_text(&keys), None).unwrap();
            assert_eq!(client.interface.private_key, keys.client);
            assert_eq!(client.peers.len(), 1);
            assert_eq!(client.peers[0].public_key, keys.peer.public_key());
            assert_eq!(peer.peers[0].public_key, keys.client.public_key());
            let allowed: Vec<String> = client.peers[0]
                .allowed_ips
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(
                allowed,
                [
                    format!("{PEER_TUNNEL_IP}/32"),
                    format!("{PEER_TUNNEL_IP6}/128")
                ]
            );
            assert!(client.interface.dns_servers.is_empty(), "no DNS changes");
            assert_eq!(
                client.peers[0].endpoint.as_ref().map(ToString::to_string),
                Some(PEER_ENDPOINT.to_owned())
            );
            assert_eq!(peer.interface.listen_port, Some(PEER_LISTEN_PORT));
        }

        #[test]
        fn the_key_file_round_trips_and_rejects_garbage() {
            let keys = DemoKeys::generate();
            let back = DemoKeys::parse(&keys.to_text()).unwrap();
            assert_eq!(back.peer, keys.peer);
            assert_eq!(back.client, keys.client);
            assert!(DemoKeys::parse("").is_none());
            assert!(DemoKeys::parse("PeerPrivateKey = nope\nClientPrivateKey = nope\n").is_none());
            let only_peer = format!("{KEY_FILE_PEER} = {}\n", keys.peer.to_base64());
            assert!(DemoKeys::parse(&only_peer).is_none());
        }

        #[test]
        fn keys_persist_between_runs_in_a_private_file() {
            use std::os::unix::fs::PermissionsExt as _;
            let dir = scratch("keys");
            let path = dir.join("state").join("demo.keys");
            let first = DemoKeys::load_or_create(&path).unwrap();
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let again = DemoKeys::load_or_create(&path).unwrap();
            assert_eq!(again.client, first.client);
            assert_eq!(again.peer, first.peer);
            // Unusable contents: new keys.
            fs::write(&path, "garbage").unwrap();
            let fresh = DemoKeys::load_or_create(&path).unwrap();
            assert_ne!(fresh.client, first.client);
            // Readable by others: not trusted, not replaced.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(DemoKeys::load_or_create(&path).is_err());
            fs::remove_dir_all(&dir).unwrap();
        }

        #[test]
        fn the_client_file_is_new_private_and_removed_only_if_still_ours() {
            use std::os::unix::fs::PermissionsExt as _;
            let dir = scratch("client");
            let path = dir.join("warren-demo.conf");
            check_client_conf_path(&path).unwrap();
            let written = write_client_conf(&path, "text\n", None).unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap(), "text\n");
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(
                fs::read_dir(&dir).unwrap().count(),
                1,
                "no temporary file is left"
            );
            // It exists now: refused up front, and never overwritten.
            assert!(check_client_conf_path(&path).is_err());
            assert!(write_client_conf(&path, "other\n", None).is_err());
            assert_eq!(fs::read_to_string(&path).unwrap(), "text\n");
            assert_eq!(
                fs::read_dir(&dir).unwrap().count(),
                1,
                "no temporary file is left"
            );
            written.remove().unwrap();
            assert!(!path.exists());
            // Replaced by someone else's file meanwhile: left alone.
            let written = write_client_conf(&path, "text\n", None).unwrap();
            // (Moved, not deleted: a deleted file's inode number could be reused at once.)
            fs::rename(&path, dir.join("moved")).unwrap();
            fs::write(&path, "theirs").unwrap();
            written.remove().unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap(), "theirs");
            fs::remove_dir_all(&dir).unwrap();
        }

        #[test]
        fn client_file_paths_are_checked_before_anything_changes() {
            let err = check_client_conf_path(Path::new("/nonexistent-dir/warren-demo.conf"));
            assert!(err.unwrap_err().to_string().contains("does not exist"));
            // The tunnel is named after the file: a name the app would refuse is refused here.
            assert!(
                check_client_conf_path(Path::new("/tmp/a name too long for a tunnel.conf"))
                    .is_err()
            );
            assert!(check_client_conf_path(Path::new("/tmp/notes.txt")).is_err());
        }

        #[test]
        fn owners_are_looked_up_by_name() {
            let root = Owner::lookup("root").unwrap();
            assert_eq!((root.uid, root.gid), (0, 0));
            let err = Owner::lookup("no-such-user-warren-test").unwrap_err();
            assert!(err.to_string().contains("no user named"), "{err}");
        }

        #[test]
        fn cleanup_of_nothing_does_nothing() {
            assert!(DemoState::default().cleanup().is_empty());
        }
    }
}
