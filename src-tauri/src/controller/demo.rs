//! The local demo on offer: `scripts/run.sh` starts `warren-helper demo --peer-only`, which writes
//! a wg-quick file for a Warren peer in a network namespace on this machine, and starts the app
//! with `--offer-demo FILE`. The window then offers it while the user has no tunnel at all;
//! accepting imports the file through the ordinary import (the key goes to the keyring like any
//! other), after which it is a tunnel like any other and the offer is gone.
//!
//! The file must exist when the offer is made and when it is accepted: the demo removes it when it
//! stops, and a stale offer would import a tunnel to a peer that is not there.

use std::path::{Path, PathBuf};

use warren_proto::ipc::TunnelName;

use super::{lock, Controller};
use crate::model::{DemoOfferView, UiError, UiErrorKind};

impl Controller {
    /// Offers the demo in `file` (replacing an earlier offer). No offer, and `false`, if the file
    /// is missing or not named like a tunnel.
    pub fn offer_demo(&self, file: &Path) -> bool {
        if !file.is_file() {
            tracing::warn!(
                "not offering the demo: {} does not exist (is `warren-helper demo --peer-only` \
                 running?)",
                file.display()
            );
            return false;
        }
        let name = match TunnelName::from_conf_path(file) {
            Ok(name) => name,
            Err(e) => {
                tracing::warn!("not offering the demo in {}: {e}", file.display());
                return false;
            }
        };
        tracing::info!("offering the local demo from {}", file.display());
        let offer = DemoOfferView {
            file: file.display().to_string(),
            name: name.to_string(),
        };
        self.with_mirror(|m| m.demo_offer = Some(offer));
        true
    }

    /// Imports the offered demo like any imported file and withdraws the offer. Returns the new
    /// tunnel's name. The offer stays if the import fails for a reason the user can fix (no
    /// keyring yet); it goes if the file is gone (the demo stopped).
    pub fn accept_demo_offer(&self) -> Result<String, UiError> {
        let offer = lock(&self.inner.mirror)
            .demo_offer
            .clone()
            .ok_or_else(|| UiError::new(UiErrorKind::NotFound, "no demo is on offer"))?;
        let file = PathBuf::from(&offer.file);
        if !file.is_file() {
            self.with_mirror(|m| m.demo_offer = None);
            return Err(UiError::new(
                UiErrorKind::NotFound,
                format!(
                    "the demo is no longer running ({} is gone); start it again with `sudo \
                     scripts/run.sh`",
                    offer.file
                ),
            ));
        }
        let outcome = self
            .import_files(std::slice::from_ref(&file))
            .pop()
            .ok_or_else(|| UiError::new(UiErrorKind::Io, "the import returned nothing"))?;
        if let Some(error) = outcome.error {
            return Err(error);
        }
        self.with_mirror(|m| m.demo_offer = None);
        Ok(outcome.imported.unwrap_or(offer.name))
    }
}
