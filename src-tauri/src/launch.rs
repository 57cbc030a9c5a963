//! The app's command line, for the first launch and for a second one (which the single-instance
//! plugin hands to the running app with the second launch's arguments and working directory).
//!
//! ```text
//! warren-app [--autostart] [--offer-demo FILE] [FILE.conf...]
//! ```
//! - `--autostart`: started at login; stay in the tray (the autostart entry passes it);
//! - `--offer-demo FILE`: offer the local demo in FILE while there is no tunnel
//!   (`scripts/run.sh` passes the file `warren-helper demo --peer-only` writes);
//! - `FILE.conf`: import these files, as "open with" does.
//!
//! Anything else is ignored and reported (a desktop environment or WebDriver may add arguments
//! of its own); parsing never fails, so a stray argument cannot stop the app from starting.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The argument the start-at-login entry passes, so the app starts in the tray.
pub const AUTOSTART_ARG: &str = "--autostart";

/// The argument that offers the local demo.
pub const OFFER_DEMO_ARG: &str = "--offer-demo";

/// What the command line asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LaunchArgs {
    /// Started at login: stay in the tray.
    pub autostart: bool,
    /// The demo file to offer.
    pub offer_demo: Option<PathBuf>,
    /// `.conf` files to import.
    pub import: Vec<PathBuf>,
    /// Arguments that meant nothing here.
    pub ignored: Vec<String>,
}

impl LaunchArgs {
    /// Parses `args` (the program name first, as `std::env::args_os` gives it); relative paths
    /// are taken from `cwd`, the directory the launch happened in.
    pub fn parse<I, S>(args: I, cwd: &Path) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut out = Self::default();
        let mut args = args.into_iter().map(Into::into).skip(1);
        while let Some(arg) = args.next() {
            let text = arg.to_string_lossy();
            if text == AUTOSTART_ARG {
                out.autostart = true;
            } else if text == OFFER_DEMO_ARG {
                match args.next() {
                    Some(file) => out.offer_demo = Some(cwd.join(file)),
                    None => out
                        .ignored
                        .push(format!("{OFFER_DEMO_ARG} (without a file)")),
                }
            } else if let Some(file) = text.strip_prefix(&format!("{OFFER_DEMO_ARG}=")) {
                out.offer_demo = Some(cwd.join(file));
            } else if !text.starts_with('-') && is_conf(&arg) {
                out.import.push(cwd.join(&arg));
            } else {
                out.ignored.push(text.into_owned());
            }
        }
        out
    }
}

fn is_conf(arg: &OsString) -> bool {
    Path::new(arg)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("conf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> LaunchArgs {
        LaunchArgs::parse(
            std::iter::once("warren-app").chain(args.iter().copied()),
            Path::new("/home/u"),
        )
    }

    #[test]
    fn no_arguments_is_a_plain_start() {
        assert_eq!(parse(&[]), LaunchArgs::default());
    }

    #[test]
    fn the_autostart_entry_starts_in_the_tray() {
        assert!(parse(&["--autostart"]).autostart);
    }

    #[test]
    fn offer_demo_takes_a_file_in_either_spelling() {
        let expected = Some(PathBuf::from("/run/x/warren-demo.conf"));
        assert_eq!(
            parse(&["--offer-demo", "/run/x/warren-demo.conf"]).offer_demo,
            expected
        );
        assert_eq!(
            parse(&["--offer-demo=/run/x/warren-demo.conf"]).offer_demo,
            expected
        );
        // Relative to where the launch happened (a second launch's own directory).
        assert_eq!(
            parse(&["--offer-demo", "d/warren-demo.conf"]).offer_demo,
            Some(PathBuf::from("/home/u/d/warren-demo.conf"))
        );
        let missing = parse(&["--offer-demo"]);
        assert_eq!(missing.offer_demo, None);
        assert_eq!(missing.ignored.len(), 1);
    }

    #[test]
    fn conf_files_are_imported_and_the_rest_ignored() {
        let args = parse(&[
            "office.conf",
            "/etc/wireguard/WG0.CONF",
            "notes.txt",
            "--unknown",
            "--autostart",
        ]);
        assert_eq!(
            args.import,
            [
                PathBuf::from("/home/u/office.conf"),
                PathBuf::from("/etc/wireguard/WG0.CONF")
            ]
        );
        assert_eq!(args.ignored, ["notes.txt", "--unknown"]);
        assert!(args.autostart);
    }
}
