//! `warren-helper demo`: the local demo, in one of two modes ([`crate::demo`] does the work).
//!
//! - `demo`: the whole demo in this terminal — a Warren peer in the network namespace
//!   `warren-demo`, a tunnel to it from here, a ping and `wg show`, until ctrl-c.
//! - `demo --peer-only --client-conf PATH [--owner USER] [--key-file FILE]`: only the peer (the
//!   namespace, the veth pair and the peer's tunnel), plus the wg-quick file of the matching
//!   client at PATH, for the desktop app (or `warren-helper up`) to import; until ctrl-c or
//!   SIGTERM. `scripts/run.sh` runs this next to the app. The two keys are kept in FILE (root
//!   only) so a tunnel imported on an earlier run keeps working.

use crate::demo::{Mode, PeerOnly};
use std::path::PathBuf;

/// `demo`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Set up only the peer (namespace, veth, the peer's tunnel) and write the matching client
    /// configuration to --client-conf, for the desktop app to import; no tunnel on this side.
    #[arg(long, requires = "client_conf")]
    peer_only: bool,
    /// With --peer-only: where to write the client's wg-quick file (mode 0600; must not exist;
    /// removed when the demo stops). The tunnel is named after the file.
    #[arg(long, value_name = "PATH", requires = "peer_only")]
    client_conf: Option<PathBuf>,
    /// With --peer-only: the user who owns the client file (so their desktop app can read it)
    /// [default: root].
    #[arg(long, value_name = "USER", requires = "peer_only")]
    owner: Option<String>,
    /// With --peer-only: where the demo keeps its two keys between runs, so a tunnel imported
    /// earlier keeps working [default: $WARREN_STATE_DIR/demo.keys, else
    /// /var/lib/warren/demo.keys].
    #[arg(long, value_name = "FILE", requires = "peer_only")]
    key_file: Option<PathBuf>,
}

impl Args {
    /// The mode these arguments ask for.
    pub fn mode(self) -> Mode {
        match self.client_conf {
            Some(client_conf) if self.peer_only => Mode::PeerOnly(PeerOnly {
                client_conf,
                owner: self.owner,
                key_file: self
                    .key_file
                    .unwrap_or_else(crate::sys::paths::demo_keys_file),
            }),
            _ => Mode::Full,
        }
    }
}

/// Runs the demo in the mode `args` ask for.
pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::demo::run(args.mode()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(args: &[&str]) -> Result<Mode, clap::Error> {
        Cli::try_parse_from(std::iter::once("demo").chain(args.iter().copied()))
            .map(|cli| cli.args.mode())
    }

    #[test]
    fn no_arguments_is_the_full_demo() {
        assert_eq!(parse(&[]).unwrap(), Mode::Full);
    }

    #[test]
    fn peer_only_takes_the_client_file_owner_and_key_file() {
        let mode = parse(&[
            "--peer-only",
            "--client-conf",
            "/tmp/x/warren-demo.conf",
            "--owner",
            "alice",
            "--key-file",
            "/tmp/x/keys",
        ])
        .unwrap();
        assert_eq!(
            mode,
            Mode::PeerOnly(PeerOnly {
                client_conf: "/tmp/x/warren-demo.conf".into(),
                owner: Some("alice".into()),
                key_file: "/tmp/x/keys".into(),
            })
        );
    }

    #[test]
    fn peer_only_defaults_root_owner_and_the_state_dir_key_file() {
        let Mode::PeerOnly(peer) = parse(&["--peer-only", "--client-conf", "d.conf"]).unwrap()
        else {
            panic!("not peer-only");
        };
        assert_eq!(peer.owner, None);
        assert_eq!(peer.client_conf, PathBuf::from("d.conf"));
        assert_eq!(peer.key_file.file_name().unwrap(), "demo.keys");
    }

    #[test]
    fn peer_only_options_need_each_other() {
        // --peer-only without a file to write, and the file options without --peer-only.
        assert!(parse(&["--peer-only"]).is_err());
        assert!(parse(&["--client-conf", "d.conf"]).is_err());
        assert!(parse(&["--owner", "alice"]).is_err());
        assert!(parse(&["--key-file", "k"]).is_err());
    }
}
