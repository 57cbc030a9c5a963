//! macOS: the tunnel's DNS through the System Configuration dynamic store (`configd`), the store
//! every macOS resolver reads its configuration from.
//!
//! macOS builds the system resolver from each network service's DNS dictionary: the `State:` key
//! (`State:/Network/Service/<id>/DNS`, what DHCP or the VPN put there) overlaid by the `Setup:`
//! key (the user's manual DNS from System Settings, mirrored into the store). So [`Ops::apply`]
//! replaces, for every active service (one with an IPv4, IPv6 or DNS state key), its `State:` DNS
//! key and — where the user configured DNS by hand — its `Setup:` DNS key with the tunnel's
//! dictionary: `ServerAddresses`, `SearchDomains` when there are any, and an owner mark
//! (`WarrenInterface` = the tunnel's interface name, a key `configd` ignores). As wg-quick does on
//! macOS, this applies to split tunnels too: the tunnel's `DNS =` becomes the system's resolver.
//!
//! Each key is one journaled [`DnsChange::DynamicStoreKey`], recorded before it is written, with
//! the key's previous value as an XML property list (lossless: every key, not just the servers) or
//! `None` when there was none. [`Ops::undo`] puts that value back (or removes the key) — but only
//! while the key still carries our owner mark: a value someone else wrote since (a DHCP renewal,
//! the user) is newer than ours and is kept. The dynamic store lives in memory, so a reboot also
//! restores the original settings; after a crash, the journal's undo does it at the next start.
//!
//! Not done here (for the daemon): watching the store and re-applying when a service that comes up
//! later, or a DHCP renewal, replaces the tunnel's DNS.

use super::macos_keys::service_id;
use super::{journal, DnsChange, DnsMethod, DnsOps, DnsPlan, DnsPlanError};
use anyhow::{anyhow, Context as _};
use std::collections::BTreeSet;
use std::io;
use system_configuration::core_foundation::array::CFArray;
use system_configuration::core_foundation::base::{CFType, TCFType};
use system_configuration::core_foundation::data::CFData;
use system_configuration::core_foundation::dictionary::CFDictionary;
use system_configuration::core_foundation::propertylist::{
    create_data, create_with_data, kCFPropertyListImmutable, kCFPropertyListXMLFormat_v1_0,
    CFPropertyList,
};
use system_configuration::core_foundation::string::CFString;
use system_configuration::dynamic_store::{SCDynamicStore, SCDynamicStoreBuilder};

/// The key in our DNS dictionaries that marks them as Warren's, with the tunnel's name.
const OWNER_KEY: &str = "WarrenInterface";
/// The keys whose service ids are "active services".
const ACTIVE_SERVICE_PATTERN: &str = "State:/Network/Service/[^/]+/(IPv4|IPv6|DNS)";

/// The macOS implementation of the DNS steps.
pub(super) struct Ops;

impl DnsOps for Ops {
    async fn detect() -> Result<DnsMethod, DnsPlanError> {
        Ok(DnsMethod::DynamicStore)
    }

    async fn check(plan: &DnsPlan) -> Result<(), DnsPlanError> {
        let unavailable = |reason: String| DnsPlanError::MethodUnavailable {
            method: plan.method,
            reason,
        };
        if plan.method != DnsMethod::DynamicStore {
            return Err(unavailable(
                "only the System Configuration dynamic store (scdynamicstore) manages DNS on macOS"
                    .into(),
            ));
        }
        let store = open().map_err(|err| unavailable(format!("{err:#}")))?;
        if active_services(&store).is_empty() {
            return Err(unavailable(
                "no active network service: nothing to set DNS on (is the machine offline?)".into(),
            ));
        }
        Ok(())
    }

    async fn apply(
        plan: &DnsPlan,
        record: &mut impl FnMut(DnsChange) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        // All store work is synchronous: the CF objects never live across an await.
        apply_sync(plan, record)
    }

    async fn undo(change: &DnsChange) -> anyhow::Result<()> {
        match change {
            DnsChange::DynamicStoreKey {
                ifname,
                key,
                original,
            } => undo_key(ifname, key, original.as_deref()),
            other => Err(anyhow!(
                "cannot undo {other:?} on macOS: it was made by another OS's DNS method"
            )),
        }
    }
}

fn apply_sync(
    plan: &DnsPlan,
    record: &mut impl FnMut(DnsChange) -> io::Result<()>,
) -> anyhow::Result<()> {
    let store = open()?;
    let ours = dns_dictionary(plan);
    for id in active_services(&store) {
        let state_key = format!("State:/Network/Service/{id}/DNS");
        let setup_key = format!("Setup:/Network/Service/{id}/DNS");
        let has_setup = store.get(setup_key.as_str()).is_some();
        for key in std::iter::once(state_key).chain(has_setup.then_some(setup_key)) {
            let original = store
                .get(key.as_str())
                .map(|value| to_xml(&value))
                .transpose()
                .with_context(|| format!("failed to save the current value of {key}"))?;
            journal(
                record,
                DnsChange::DynamicStoreKey {
                    ifname: plan.ifname.clone(),
                    key: key.clone(),
                    original,
                },
            )?;
            if !store.set(key.as_str(), ours.clone()) {
                anyhow::bail!(
                    "failed to set {key} in the System Configuration dynamic store (is this \
                     process running as root?)"
                );
            }
            tracing::debug!("{}: set {key}", plan.ifname);
        }
    }
    Ok(())
}

fn undo_key(ifname: &str, key: &str, original: Option<&str>) -> anyhow::Result<()> {
    let store = open()?;
    let Some(current) = store.get(key) else {
        tracing::debug!("{key} is gone (its service went away): nothing to restore");
        return Ok(());
    };
    if owner_of(&current).as_deref() != Some(ifname) {
        tracing::info!(
            "{key} was changed by someone else since {ifname} set it; keeping the newer value"
        );
        return Ok(());
    }
    let restored = match original {
        Some(xml) => {
            let value = from_xml(xml).with_context(|| format!("failed to read the saved {key}"))?;
            store.set_raw(key, &value)
        }
        None => store.remove(key),
    };
    if !restored {
        anyhow::bail!("failed to restore {key} in the System Configuration dynamic store");
    }
    tracing::debug!("restored {key}");
    Ok(())
}

fn open() -> anyhow::Result<SCDynamicStore> {
    SCDynamicStoreBuilder::new("warren-helper")
        .build()
        .context("failed to open the System Configuration dynamic store")
}

/// The ids of the services that are active now, sorted.
fn active_services(store: &SCDynamicStore) -> BTreeSet<String> {
    let Some(keys) = store.get_keys(ACTIVE_SERVICE_PATTERN) else {
        return BTreeSet::new();
    };
    keys.iter()
        .filter_map(|key| service_id(&key.to_string()).map(str::to_owned))
        .collect()
}

/// The tunnel's DNS dictionary, with the owner mark.
fn dns_dictionary(plan: &DnsPlan) -> CFDictionary {
    let strings = |items: &mut dyn Iterator<Item = String>| {
        let items: Vec<CFString> = items.map(|item| CFString::new(&item)).collect();
        CFArray::from_CFTypes(&items).into_CFType()
    };
    let mut pairs: Vec<(CFString, CFType)> = vec![
        (
            CFString::from_static_string("ServerAddresses"),
            strings(&mut plan.servers.iter().map(ToString::to_string)),
        ),
        (
            CFString::from_static_string(OWNER_KEY),
            CFString::new(&plan.ifname).into_CFType(),
        ),
    ];
    if !plan.search.is_empty() {
        pairs.push((
            CFString::from_static_string("SearchDomains"),
            strings(&mut plan.search.iter().cloned()),
        ));
    }
    CFDictionary::from_CFType_pairs(&pairs).into_untyped()
}

/// The owner mark of a DNS dictionary, if it has one.
fn owner_of(value: &CFPropertyList) -> Option<String> {
    let dictionary = value.downcast::<CFDictionary>()?;
    let key = CFString::from_static_string(OWNER_KEY);
    let item = dictionary.find(key.as_CFTypeRef())?;
    // SAFETY: the values of a dictionary from the dynamic store are CF objects, and the dictionary
    // keeps this one alive while `dictionary` lives; the get rule retains it for the new wrapper.
    let owner = unsafe { CFType::wrap_under_get_rule(*item) };
    owner.downcast::<CFString>().map(|name| name.to_string())
}

fn to_xml(value: &CFPropertyList) -> anyhow::Result<String> {
    let data = create_data(value.as_concrete_TypeRef(), kCFPropertyListXMLFormat_v1_0)
        .map_err(|err| anyhow!("{err}"))?;
    String::from_utf8(data.bytes().to_vec()).context("the property list is not UTF-8")
}

fn from_xml(xml: &str) -> anyhow::Result<CFPropertyList> {
    let (reference, _format) = create_with_data(
        CFData::from_buffer(xml.as_bytes()),
        kCFPropertyListImmutable,
    )
    .map_err(|err| anyhow!("{err}"))?;
    // SAFETY: on success CFPropertyListCreateWithData returns a new, owned reference (the create
    // rule), which the wrapper takes over and releases when dropped.
    Ok(unsafe { CFPropertyList::wrap_under_create_rule(reference) })
}
