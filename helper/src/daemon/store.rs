//! System tunnels on disk, and the catalogue of them: the directory administrators own
//! (`crate::sys::paths::system_tunnels_dir`, or `--tunnels-dir`), one wg-quick file per tunnel,
//! and two optional side files. The catalogue operations — list the installed tunnels, the
//! status of one at rest, import, remove — are here; the manager owns what runs, lays it over
//! the catalogue, and checks before an import or a removal that nothing running is in the way.
//!
//! ```text
//! /etc/warren/tunnels/            0700 root
//!   office.conf                   0600 root   the configuration (private key included)
//!   office.autostart              any         present = bring it up when the daemon starts
//!   office.options.json           0600 root   kill switch / allow LAN ({"kill_switch":"auto",…})
//! ```
//!
//! Autostart is a flag file rather than something inside the `.conf`, so that the `.conf` stays
//! exactly what `wg-quick` reads and an administrator switches autostart with `touch` / `rm`.
//!
//! Files are written atomically with mode 0600 ([`crate::sys::write_private_atomically`]). A
//! `.conf` that others may write, or that someone other than this process's user owns, is
//! refused when loaded: it would let them choose the routes and hooks of a root process.

use crate::sys::write_private_atomically;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use warren_proto::config::TunnelConfig;
use warren_proto::ipc::{
    IpcError, TunnelKind, TunnelName, TunnelOptions, TunnelState, TunnelStatus, TunnelSummary,
};
use zeroize::Zeroizing;

const CONF_SUFFIX: &str = ".conf";
const AUTOSTART_SUFFIX: &str = ".autostart";
const OPTIONS_SUFFIX: &str = ".options.json";

/// The system tunnels directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (which need not exist yet).
    pub fn new(dir: PathBuf) -> Self {
        Store { dir }
    }

    /// The `.conf` path of `name`.
    pub fn conf_path(&self, name: &TunnelName) -> PathBuf {
        self.dir.join(format!("{name}{CONF_SUFFIX}"))
    }

    fn side_path(&self, name: &TunnelName, suffix: &str) -> PathBuf {
        self.dir.join(format!("{name}{suffix}"))
    }

    /// The names of the installed tunnels, sorted. A missing directory holds none; files whose
    /// name is not a valid tunnel name are skipped with a warning.
    pub fn names(&self) -> Result<Vec<TunnelName>, IpcError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io_error("list", &self.dir, &e)),
        };
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(CONF_SUFFIX)) else {
                continue;
            };
            match TunnelName::new(stem) {
                Ok(name) => names.push(name),
                Err(e) => tracing::warn!(
                    "{}: ignored: {e}",
                    self.dir.join(entry.file_name()).display()
                ),
            }
        }
        names.sort();
        Ok(names)
    }

    /// The catalogue: every installed tunnel as it is at rest (a system tunnel, disconnected,
    /// with its saved options), sorted by name. The manager lays the running ones over it.
    pub fn list(&self) -> Result<Vec<TunnelSummary>, IpcError> {
        Ok(self
            .names()?
            .into_iter()
            .map(|name| TunnelSummary {
                options: self.options(&name),
                name,
                kind: TunnelKind::System,
                state: TunnelState::Disconnected,
            })
            .collect())
    }

    /// The status of the installed tunnel `name` at rest (disconnected, no peers), or `None` when
    /// no such tunnel is installed. The manager answers for a running one itself.
    pub fn status(&self, name: &TunnelName) -> Option<TunnelStatus> {
        self.exists(name).then(|| TunnelStatus {
            name: name.clone(),
            kind: TunnelKind::System,
            state: TunnelState::Disconnected,
            interface: None,
            options: self.options(name),
            peers: Vec::new(),
            health: None,
        })
    }

    /// Installs `config` as the system tunnel `name` ([`Store::save`]) and logs where. Whether it
    /// may be installed next to what runs is the manager's to check first.
    pub fn import(
        &self,
        name: &TunnelName,
        config: &TunnelConfig,
        replace: bool,
    ) -> Result<(), IpcError> {
        self.save(name, config, replace)?;
        tracing::info!(
            "system tunnel '{name}' installed in {}",
            self.conf_path(name).display()
        );
        Ok(())
    }

    /// Whether `name` is installed.
    pub fn exists(&self, name: &TunnelName) -> bool {
        self.conf_path(name).is_file()
    }

    /// Reads and parses `name`'s configuration, after checking who may have written it.
    pub fn load(&self, name: &TunnelName) -> Result<TunnelConfig, IpcError> {
        let path = self.conf_path(name);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(IpcError::not_found(format!(
                    "no system tunnel named '{name}' ({} does not exist)",
                    path.display()
                )))
            }
            Err(e) => return Err(self.io_error("read", &path, &e)),
            Ok(metadata) => check_trusted(&path, &metadata)?,
        }
        warren_proto::config::parse_file(&path).map_err(IpcError::from)
    }

    /// Installs `config` as `name` (0600), refusing to overwrite unless `replace`.
    pub fn save(
        &self,
        name: &TunnelName,
        config: &TunnelConfig,
        replace: bool,
    ) -> Result<(), IpcError> {
        let path = self.conf_path(name);
        if !replace && path.exists() {
            return Err(IpcError::conflict(
                None,
                format!(
                    "a system tunnel named '{name}' already exists ({}); remove it first or \
                     replace it",
                    path.display()
                ),
            ));
        }
        create_private_dir(&self.dir).map_err(|e| self.io_error("create", &self.dir, &e))?;
        let text = Zeroizing::new(config.to_conf());
        write_private_atomically(&path, text.as_bytes())
            .map_err(|e| self.io_error("write", &path, &e))
    }

    /// Deletes the system tunnel `name` and its side files (the manager checks first that it is
    /// not up).
    pub fn remove(&self, name: &TunnelName) -> Result<(), IpcError> {
        let path = self.conf_path(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(IpcError::not_found(format!(
                    "no system tunnel named '{name}' ({} does not exist)",
                    path.display()
                )))
            }
            Err(e) => return Err(self.io_error("remove", &path, &e)),
        }
        for suffix in [AUTOSTART_SUFFIX, OPTIONS_SUFFIX] {
            let side = self.side_path(name, suffix);
            if let Err(e) = fs::remove_file(&side) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("failed to remove {}: {e}", side.display());
                }
            }
        }
        tracing::info!("system tunnel '{name}' removed");
        Ok(())
    }

    /// Whether `name` is marked to come up when the daemon starts.
    pub fn autostart(&self, name: &TunnelName) -> bool {
        self.side_path(name, AUTOSTART_SUFFIX).exists()
    }

    /// `name`'s saved options, or the defaults. A broken file is reported and ignored.
    pub fn options(&self, name: &TunnelName) -> TunnelOptions {
        let path = self.side_path(name, OPTIONS_SUFFIX);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(
                    "{}: ignored (using the default options): {e}",
                    path.display()
                );
                TunnelOptions::default()
            }),
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("failed to read {}: {e}", path.display());
                }
                TunnelOptions::default()
            }
        }
    }

    /// Saves `name`'s options.
    pub fn save_options(&self, name: &TunnelName, options: &TunnelOptions) -> Result<(), IpcError> {
        let path = self.side_path(name, OPTIONS_SUFFIX);
        let json = serde_json::to_vec(options)
            .map_err(|e| IpcError::internal(format!("failed to encode options: {e}")))?;
        write_private_atomically(&path, &json).map_err(|e| self.io_error("write", &path, &e))
    }

    fn io_error(&self, verb: &str, path: &Path, error: &io::Error) -> IpcError {
        if error.kind() == io::ErrorKind::PermissionDenied {
            IpcError::not_authorized(format!("failed to {verb} {}: {error}", path.display()))
        } else {
            IpcError::internal(format!("failed to {verb} {}: {error}", path.display()))
        }
    }
}

/// Refuses a configuration file others could have written.
#[cfg(unix)]
fn check_trusted(path: &Path, metadata: &fs::Metadata) -> Result<(), IpcError> {
    use std::os::unix::fs::MetadataExt as _;
    let euid = crate::sys::euid();
    let refuse = |why: String| {
        Err(IpcError::not_authorized(format!(
            "refusing {}: {why}; it must be a regular file owned by uid {euid} that only its \
             owner can write (chmod 600)",
            path.display()
        )))
    };
    if !metadata.file_type().is_file() {
        return refuse("it is not a regular file".into());
    }
    if metadata.uid() != euid {
        return refuse(format!("it is owned by uid {}", metadata.uid()));
    }
    if metadata.mode() & 0o022 != 0 {
        return refuse(format!(
            "its mode {:o} lets others write it",
            metadata.mode() & 0o777
        ));
    }
    if metadata.mode() & 0o044 != 0 {
        tracing::warn!(
            "{}: others can read this file and its private key (mode {:o}); chmod 600 it",
            path.display(),
            metadata.mode() & 0o777
        );
    }
    Ok(())
}

/// Refuses a configuration file others could have changed: on Windows, one whose owner or DACL
/// lets anyone but SYSTEM and the Administrators change it (`sys::windows::acl`).
#[cfg(not(unix))]
fn check_trusted(path: &Path, metadata: &fs::Metadata) -> Result<(), IpcError> {
    let refuse = |why: String| {
        Err(IpcError::not_authorized(format!(
            "refusing {}: {why}; it must be a regular file that only SYSTEM and the \
             Administrators can change (as in the tunnels directory the helper creates)",
            path.display()
        )))
    };
    if !metadata.file_type().is_file() {
        return refuse("it is not a regular file".into());
    }
    #[cfg(windows)]
    if let Err(why) = crate::sys::windows::acl::check_admin_only(path) {
        return refuse(why);
    }
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(windows)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    crate::sys::windows::acl::harden_dir(dir)
}

#[cfg(not(any(unix, windows)))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::ipc::{ErrorKind, KillSwitch};

    const CONF: &str = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
                        Address = 198.19.0.1/24\n\n[Peer]\n\
                        PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
                        AllowedIPs = 198.19.5.0/24\n";

    use crate::sys::test_dir::TempDir;

    fn name(s: &str) -> TunnelName {
        TunnelName::new(s).unwrap()
    }

    #[test]
    fn save_list_load_remove() {
        let dir = TempDir::new("store-roundtrip");
        let store = Store::new(dir.0.join("tunnels"));
        assert_eq!(store.names().unwrap(), vec![]);
        let config = warren_proto::config::parse(CONF, None).unwrap();
        store.save(&name("office"), &config, false).unwrap();
        let again = store.save(&name("office"), &config, false).unwrap_err();
        assert!(
            matches!(again.kind, ErrorKind::Conflict { .. }),
            "{again:?}"
        );
        store.save(&name("office"), &config, true).unwrap();
        fs::write(store.dir.join("not a name.conf"), CONF).unwrap();
        fs::write(store.dir.join("notes.txt"), "x").unwrap();
        assert_eq!(store.names().unwrap(), vec![name("office")]);
        assert_eq!(store.load(&name("office")).unwrap(), config);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(store.conf_path(&name("office")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = fs::metadata(&store.dir).unwrap().permissions().mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        assert!(!store.autostart(&name("office")));
        fs::write(store.dir.join("office.autostart"), "").unwrap();
        assert!(store.autostart(&name("office")));
        let options = TunnelOptions {
            kill_switch: KillSwitch::On,
            allow_lan: true,
        };
        assert_eq!(store.options(&name("office")), TunnelOptions::default());
        store.save_options(&name("office"), &options).unwrap();
        assert_eq!(store.options(&name("office")), options);
        store.remove(&name("office")).unwrap();
        assert!(!store.autostart(&name("office")));
        assert_eq!(
            store.remove(&name("office")).unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            store.load(&name("office")).unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn the_catalogue_lists_imports_and_removes_tunnels_at_rest() {
        let dir = TempDir::new("store-catalogue");
        let store = Store::new(dir.0.join("tunnels"));
        assert!(
            store.list().unwrap().is_empty(),
            "a missing directory holds none"
        );
        assert!(store.status(&name("office")).is_none());
        let config = warren_proto::config::parse(CONF, None).unwrap();
        store.import(&name("office"), &config, false).unwrap();
        store.import(&name("home"), &config, false).unwrap();
        let refused = store.import(&name("home"), &config, false).unwrap_err();
        assert!(
            matches!(refused.kind, ErrorKind::Conflict { .. }),
            "{refused:?}"
        );
        let options = TunnelOptions {
            kill_switch: KillSwitch::On,
            allow_lan: false,
        };
        store.save_options(&name("office"), &options).unwrap();

        let listed = store.list().unwrap();
        assert_eq!(
            listed.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            [name("home"), name("office")]
        );
        assert!(listed
            .iter()
            .all(|t| t.kind == TunnelKind::System && t.state == TunnelState::Disconnected));
        assert_eq!(listed[1].options, options);
        assert_eq!(listed[0].options, TunnelOptions::default());

        let status = store.status(&name("office")).unwrap();
        assert_eq!(status.state, TunnelState::Disconnected);
        assert_eq!(status.options, options);
        assert!(status.interface.is_none() && status.peers.is_empty());

        store.remove(&name("office")).unwrap();
        assert!(store.status(&name("office")).is_none());
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(
            store.remove(&name("office")).unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new("store-trust");
        let store = Store::new(dir.0.clone());
        let config = warren_proto::config::parse(CONF, None).unwrap();
        store.save(&name("wg0"), &config, false).unwrap();
        let path = store.conf_path(&name("wg0"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let error = store.load(&name("wg0")).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotAuthorized);
        assert!(error.message.contains("lets others write it"), "{error}");
    }

    #[test]
    fn a_bad_file_names_its_line_and_never_its_key() {
        let dir = TempDir::new("store-bad");
        let store = Store::new(dir.0.clone());
        let config = warren_proto::config::parse(CONF, None).unwrap();
        store.save(&name("bad"), &config, false).unwrap();
        let path = store.conf_path(&name("bad"));
        fs::write(&path, CONF.replace("198.19.5.0/24", "198.19.5.0/99")).unwrap();
        let error = store.load(&name("bad")).unwrap_err();
        assert!(
            matches!(error.kind, ErrorKind::InvalidConfig { line: Some(7), .. }),
            "{error:?}"
        );
        assert!(!error.message.contains("yAnz5TF"), "{error}");
    }
}
