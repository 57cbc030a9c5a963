//! `warren-helper generate-docs DIR` (hidden): the manual pages and shell completions, generated
//! from the clap definitions of the command line itself, so what the packages install can never
//! drift from the binary they install. `installer/linux/build-deb.sh` runs it with the release
//! binary it packages; nothing here is written by hand.
//!
//! What it writes into `DIR`, laid out by where the .deb installs it:
//!
//! | in `DIR` | installed as |
//! |---|---|
//! | `man8/<bin>.8`, `man8/<bin>-<subcommand>.8` | `/usr/share/man/man8/` (gzipped by build-deb.sh) |
//! | `bash-completion/<bin>` | `/usr/share/bash-completion/completions/` |
//! | `zsh/_<bin>` | `/usr/share/zsh/vendor-completions/` |
//! | `fish/<bin>.fish` | `/usr/share/fish/vendor_completions.d/` |
//!
//! Section 8 (system administration), as for `wg-quick(8)` and `wireguard-go(8)`: the daemon and
//! most commands are for root and members of group `warren`. Each binary of the package is one
//! entry of [`binaries`] — `warren-helper` and `warren-wg` (`crate::wg`) — and their pages and
//! completions land in the same directories, which the package assets take by glob.

use anyhow::Context as _;
use clap::CommandFactory as _;
use std::path::{Path, PathBuf};

/// The manual section every page goes in.
const SECTION: &str = "8";

/// The hidden subcommand itself. It is not part of [`super::Cli`] (the main function adds it), so
/// the pages and completions generated from `Cli` do not mention it.
pub fn command() -> clap::Command {
    clap::Command::new("generate-docs")
        .hide(true)
        .about("Write the manual pages and shell completions into DIR (for the packages)")
        .arg(
            clap::Arg::new("dir")
                .value_name("DIR")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("The directory to write into (created if missing)"),
        )
}

/// The command line of each binary whose pages and completions the packages install.
pub fn binaries() -> Vec<clap::Command> {
    vec![super::Cli::command(), crate::wg::command()]
}

/// Runs `generate-docs` with its parsed arguments.
pub fn run(args: &clap::ArgMatches) -> anyhow::Result<()> {
    let dir = args
        .get_one::<PathBuf>("dir")
        .context("generate-docs needs a directory")?;
    for command in binaries() {
        for path in generate(command, dir)? {
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// Writes `command`'s manual pages (one per visible subcommand, as clap_mangen names them) and
/// its bash, zsh and fish completions under `dir`; returns the files written.
pub fn generate(command: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut command = command.disable_help_subcommand(true);
    // Gives each subcommand its display name (`warren-helper-up`) for its page's title.
    command.build();
    let name = command.get_name().to_owned();
    let mut written = Vec::new();

    let man_dir = dir.join(format!("man{SECTION}"));
    create_dir(&man_dir)?;
    let version = command.get_version().unwrap_or_default().to_owned();
    write_man_pages(&command, &man_dir, &version, &mut written)?;

    for (shell, sub, file) in [
        (clap_complete::Shell::Bash, "bash-completion", name.clone()),
        (clap_complete::Shell::Zsh, "zsh", format!("_{name}")),
        (clap_complete::Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let shell_dir = dir.join(sub);
        create_dir(&shell_dir)?;
        let path = shell_dir.join(file);
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command.clone(), &name, &mut out);
        std::fs::write(&path, out)
            .with_context(|| format!("failed to write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The page of `command` and, recursively, of each visible subcommand.
fn write_man_pages(
    command: &clap::Command,
    dir: &Path,
    version: &str,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub, dir, version, written)?;
    }
    let page = clap_mangen::Man::new(command.clone())
        .section(SECTION)
        .manual("Warren")
        .source(format!("Warren {version}"));
    let path = dir.join(page.get_filename());
    let mut out = Vec::new();
    page.render(&mut out)
        .with_context(|| format!("failed to render {}", path.display()))?;
    std::fs::write(&path, out).with_context(|| format!("failed to write {}", path.display()))?;
    written.push(path);
    Ok(())
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("warren-docs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn every_subcommand_gets_a_page_and_generate_docs_none() {
        let dir = temp_dir("pages");
        let written = generate(super::super::Cli::command(), &dir).unwrap();
        let man = dir.join("man8");
        let top = std::fs::read_to_string(man.join("warren-helper.8")).unwrap();
        assert!(top.starts_with(".ie"), "not roff: {}", &top[..40]);
        assert!(top.contains(".TH warren-helper 8"), "{top}");
        for sub in super::super::Cli::command().get_subcommands() {
            let page = man.join(format!("warren-helper-{}.8", sub.get_name()));
            // As roff writes it: `warren\-helper\-up(8)` in the SUBCOMMANDS section.
            let reference = format!("warren-helper-{}(8)", sub.get_name()).replace('-', "\\-");
            assert!(page.exists(), "no page for {}", sub.get_name());
            assert!(
                top.contains(&reference),
                "{} not on the top page",
                sub.get_name()
            );
        }
        // The exit codes (after_help) are on the page, not only in --help.
        assert!(top.contains("Exit codes"), "{top}");
        for file in [
            "bash-completion/warren-helper",
            "zsh/_warren-helper",
            "fish/warren-helper.fish",
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(text.contains("genkey"), "{file} lacks the subcommands");
            assert!(
                !text.contains("generate-docs"),
                "{file} offers generate-docs"
            );
        }
        assert!(!man.join("warren-helper-generate-docs.8").exists());
        assert_eq!(written.len(), std::fs::read_dir(&man).unwrap().count() + 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn warren_wg_gets_its_page_and_completions() {
        let dir = temp_dir("wg");
        let written = generate(crate::wg::command(), &dir).unwrap();
        let page = std::fs::read_to_string(dir.join("man8/warren-wg.8")).unwrap();
        assert!(page.contains(".TH warren-wg 8"), "{page}");
        // Its own NAME line, not warren-helper's (the package description).
        assert!(
            page.contains("warren\\-wg \\- Userspace WireGuard interface for wg\\-quick"),
            "{page}"
        );
        for text in ["WG_PROCESS_FOREGROUND", "LOG_LEVEL", "Exit codes", "IFNAME"] {
            assert!(page.contains(text), "the page lacks {text}");
        }
        assert!(page.contains("\\-\\-foreground"), "{page}");
        let bash = std::fs::read_to_string(dir.join("bash-completion/warren-wg")).unwrap();
        assert!(bash.contains("--foreground"), "{bash}");
        assert_eq!(
            written.len(),
            4,
            "one page and three completions: {written:?}"
        );
        assert!(binaries().iter().any(|c| c.get_name() == "warren-wg"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
