//! `warren-helper service install|uninstall` (Windows): what the installer runs to register the
//! daemon with the Service Control Manager ([`crate::sys::windows::service`] does the work).

use anyhow::Context as _;

/// What to do with the service.
#[derive(clap::Subcommand)]
pub enum Action {
    /// Create (or update) the service for this executable, and the `Warren Users` group.
    Install,
    /// Stop and delete the service.
    Uninstall,
}

pub fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Install => {
            let exe = std::env::current_exe().context("failed to find this program's path")?;
            crate::sys::windows::service::install(&exe)
        }
        Action::Uninstall => crate::sys::windows::service::uninstall(),
    }
}
