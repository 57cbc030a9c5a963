//! Windows: the tunnel's DNS on the tunnel interface itself, plus, for a full tunnel, an NRPT rule
//! that sends every name to the tunnel's resolvers.
//!
//! - `SetInterfaceDnsSettings` (Windows 10 2004 and later) sets the tunnel interface's DNS servers
//!   (one call for the IPv4 servers with the search list, one for the IPv6 servers) — the
//!   interface is Warren's own, so there is nothing to back up, and undoing clears the settings.
//!   Windows then asks the servers of the interface with the best route, which for a full tunnel is
//!   the tunnel's, but may still send a query to another interface's resolver.
//! - For a full tunnel, an NRPT rule (the Name Resolution Policy Table: the DNS client's
//!   per-namespace routing) for the namespace `.` — every name — with the tunnel's servers: the key
//!   `HKLM\SOFTWARE\Policies\Microsoft\Windows NT\DNSClient\DnsPolicyConfig\Warren-<ifname>` with
//!   `Name = .`, `GenericDNSServers = <servers>`, `ConfigOptions = 8` (generic DNS servers) and
//!   `Version = 2`, followed by a policy refresh so the DNS client reads it. The rule key is
//!   volatile: a reboot removes it even if the helper never could. Undo deletes exactly that key,
//!   and refuses any key that is not a `Warren-` rule directly under `DnsPolicyConfig`, so a
//!   tampered journal cannot make the helper delete other registry keys.
//! - Queries that still leave outside the tunnel (port 53 off-tunnel) are the kill switch's to
//!   block (the WFP filters in `firewall/wfp.rs`), as wireguard-windows does.
//!
//! The values (server lists, the rule's key and values, the undo's key check) and the registry
//! steps are decided in `windows_values.rs`, tested on every OS with an in-memory registry; this
//! file makes the calls ([`Hklm`] is the real registry).

use super::windows_values::{self as values, RegValue, Registry};
use super::{journal, DnsChange, DnsMethod, DnsOps, DnsPlan, DnsPlanError};
use crate::sys::windows::net as winnet;
use anyhow::{anyhow, Context as _};
use std::io;
use std::net::IpAddr;
use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, NO_ERROR, WIN32_ERROR};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    SetInterfaceDnsSettings, DNS_INTERFACE_SETTINGS, DNS_INTERFACE_SETTINGS_VERSION1,
    DNS_SETTING_IPV6, DNS_SETTING_NAMESERVER, DNS_SETTING_SEARCHLIST,
};
use windows_sys::Win32::System::GroupPolicy::{RefreshPolicyEx, RP_FORCE};
use windows_sys::Win32::System::Registry::{
    RegCloseKey, RegCreateKeyExW, RegDeleteTreeW, RegSetValueExW, HKEY, HKEY_LOCAL_MACHINE,
    KEY_WRITE, REG_DWORD, REG_MULTI_SZ, REG_OPTION_NON_VOLATILE, REG_OPTION_VOLATILE, REG_SZ,
    REG_VALUE_TYPE,
};

/// The Windows implementation of the DNS steps.
pub(super) struct Ops;

impl DnsOps for Ops {
    async fn detect() -> Result<DnsMethod, DnsPlanError> {
        Ok(DnsMethod::Windows)
    }

    async fn check(plan: &DnsPlan) -> Result<(), DnsPlanError> {
        let unavailable = |reason: String| DnsPlanError::MethodUnavailable {
            method: plan.method,
            reason,
        };
        if plan.method != DnsMethod::Windows {
            return Err(unavailable(
                "only the interface's own DNS settings (windows) are supported on Windows".into(),
            ));
        }
        winnet::index_from_alias(&plan.ifname)
            .map_err(|err| unavailable(format!("cannot find interface {}: {err}", plan.ifname)))?;
        Ok(())
    }

    async fn apply(
        plan: &DnsPlan,
        record: &mut impl FnMut(DnsChange) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        let ifindex = winnet::index_from_alias(&plan.ifname)
            .with_context(|| format!("failed to find interface {}", plan.ifname))?;
        journal(
            record,
            DnsChange::WindowsInterface {
                ifname: plan.ifname.clone(),
                ifindex,
            },
        )?;
        set_interface_dns(ifindex, &plan.servers, &plan.search)
            .with_context(|| format!("failed to set the DNS servers of {}", plan.ifname))?;
        if plan.route_all {
            let key = values::nrpt_key(&plan.ifname);
            journal(
                record,
                DnsChange::NrptRule {
                    ifname: plan.ifname.clone(),
                    key: key.clone(),
                },
            )?;
            values::write_nrpt_rule(&mut Hklm, &key, &plan.servers)
                .with_context(|| format!("failed to add the NRPT rule HKLM\\{key}"))?;
            refresh_policy();
        }
        Ok(())
    }

    async fn undo(change: &DnsChange) -> anyhow::Result<()> {
        match change {
            DnsChange::WindowsInterface { ifname, ifindex } => {
                match winnet::index_from_alias(ifname) {
                    Ok(index) if index == *ifindex => set_interface_dns(*ifindex, &[], &[])
                        .with_context(|| format!("failed to clear the DNS servers of {ifname}")),
                    // Gone, or another interface now: its settings went with the old one.
                    _ => Ok(()),
                }
            }
            DnsChange::NrptRule { key, .. } => {
                values::delete_nrpt_rule(&mut Hklm, key)?;
                refresh_policy();
                Ok(())
            }
            other => Err(anyhow!(
                "cannot undo {other:?} on Windows: it was made by another OS's DNS method"
            )),
        }
    }
}

/// NUL-terminated UTF-16.
fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

fn check(code: WIN32_ERROR) -> io::Result<()> {
    if code == NO_ERROR {
        Ok(())
    } else {
        // Win32 error codes fit in an i32.
        Err(io::Error::from_raw_os_error(code as i32))
    }
}

/// Sets (or, with empty lists, clears) the interface's IPv4 servers and search list, then its
/// IPv6 servers.
fn set_interface_dns(ifindex: u32, servers: &[IpAddr], search: &[String]) -> io::Result<()> {
    let guid = winnet::guid_from_index(ifindex)?;
    let mut v4_servers = wide(&values::interface_servers(servers, false));
    let mut v6_servers = wide(&values::interface_servers(servers, true));
    let mut search = wide(&values::search_list(search));
    let mut settings = DNS_INTERFACE_SETTINGS {
        Version: DNS_INTERFACE_SETTINGS_VERSION1,
        Flags: u64::from(DNS_SETTING_NAMESERVER | DNS_SETTING_SEARCHLIST),
        Domain: std::ptr::null_mut(),
        NameServer: v4_servers.as_mut_ptr(),
        SearchList: search.as_mut_ptr(),
        RegistrationEnabled: 0,
        RegisterAdapterName: 0,
        EnableLLMNR: 0,
        QueryAdapterName: 0,
        ProfileNameServer: std::ptr::null_mut(),
    };
    // SAFETY: `settings` points at NUL-terminated UTF-16 buffers that outlive the call, and its
    // flags name exactly the fields that are set.
    check(unsafe { SetInterfaceDnsSettings(guid, &settings) })?;
    settings.Flags = u64::from(DNS_SETTING_IPV6 | DNS_SETTING_NAMESERVER);
    settings.NameServer = v6_servers.as_mut_ptr();
    settings.SearchList = std::ptr::null_mut();
    // SAFETY: as above, for the IPv6 servers only.
    check(unsafe { SetInterfaceDnsSettings(guid, &settings) })
}

/// An open registry key, closed on drop.
struct Key(HKEY);

impl Key {
    fn create(path: &str, volatile: bool) -> io::Result<Key> {
        let path = wide(path);
        let mut key: HKEY = std::ptr::null_mut();
        let options = if volatile {
            REG_OPTION_VOLATILE
        } else {
            REG_OPTION_NON_VOLATILE
        };
        // SAFETY: `path` is NUL-terminated UTF-16 that outlives the call; class and security
        // attributes may be null; `key` is a valid out-pointer, and the disposition may be null.
        check(unsafe {
            RegCreateKeyExW(
                HKEY_LOCAL_MACHINE,
                path.as_ptr(),
                0,
                std::ptr::null(),
                options,
                KEY_WRITE,
                std::ptr::null(),
                &mut key,
                std::ptr::null_mut(),
            )
        })?;
        Ok(Key(key))
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: the handle came from RegCreateKeyExW and is closed exactly once, here.
        unsafe {
            RegCloseKey(self.0);
        }
    }
}

/// `HKEY_LOCAL_MACHINE` as a [`Registry`].
struct Hklm;

impl Registry for Hklm {
    fn create_key(&mut self, key: &str, volatile: bool) -> io::Result<()> {
        Key::create(key, volatile).map(drop)
    }

    fn set_value(&mut self, key: &str, name: &str, value: &RegValue) -> io::Result<()> {
        // Opening an existing key with RegCreateKeyExW keeps its volatility.
        let key = Key::create(key, false)?;
        let kind: REG_VALUE_TYPE = match value {
            RegValue::Dword(_) => REG_DWORD,
            RegValue::String(_) => REG_SZ,
            RegValue::MultiString(_) => REG_MULTI_SZ,
        };
        let data = value.data();
        let name = wide(name);
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "registry value too long"))?;
        // SAFETY: the key is open for writing; `name` is NUL-terminated UTF-16 and `data` holds
        // `len` bytes, both outliving the call.
        check(unsafe { RegSetValueExW(key.0, name.as_ptr(), 0, kind, data.as_ptr(), len) })
    }

    fn delete_tree(&mut self, key: &str) -> io::Result<()> {
        let path = wide(key);
        // SAFETY: `path` is NUL-terminated UTF-16 that outlives the call.
        let code = unsafe { RegDeleteTreeW(HKEY_LOCAL_MACHINE, path.as_ptr()) };
        if code == ERROR_FILE_NOT_FOUND {
            return Ok(());
        }
        check(code)
    }
}

/// Asks Windows to re-read machine policy, where the DNS client finds the NRPT. Best effort.
fn refresh_policy() {
    // SAFETY: no pointers; a plain request to the Group Policy service.
    if unsafe { RefreshPolicyEx(1, RP_FORCE) } == 0 {
        tracing::warn!(
            "failed to refresh machine policy ({}); the NRPT change applies at the next refresh",
            io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real registry half: a rule written and deleted in `HKEY_LOCAL_MACHINE` (under Wine in
    /// the `windows` stage: Wine's registry, which keeps keys and values as Windows does).
    #[test]
    fn a_rule_round_trips_through_the_registry() {
        let key = values::nrpt_key("warren-unit-test");
        let servers: Vec<IpAddr> = vec!["198.18.0.53".parse().unwrap()];
        values::write_nrpt_rule(&mut Hklm, &key, &servers).expect("write the rule");
        let read = |name: &str| -> Option<Vec<u8>> {
            let (path, name) = (wide(&key), wide(name));
            // One RegGetValueW: with no buffer it asks for the length, with one it reads.
            let get = |data: Option<&mut Vec<u8>>, len: &mut u32| {
                let data = data.map_or(std::ptr::null_mut(), |d| d.as_mut_ptr().cast());
                // SAFETY: the strings are NUL-terminated UTF-16; `data` is null or holds `len`
                // bytes.
                unsafe {
                    windows_sys::Win32::System::Registry::RegGetValueW(
                        HKEY_LOCAL_MACHINE,
                        path.as_ptr(),
                        name.as_ptr(),
                        windows_sys::Win32::System::Registry::RRF_RT_ANY,
                        std::ptr::null_mut(),
                        data,
                        len,
                    )
                }
            };
            let mut len = 0u32;
            if get(None, &mut len) != NO_ERROR {
                return None;
            }
            let mut data = vec![0u8; len as usize];
            (get(Some(&mut data), &mut len) == NO_ERROR).then(|| data[..len as usize].to_vec())
        };
        assert_eq!(read("ConfigOptions"), Some(vec![8, 0, 0, 0]));
        assert_eq!(
            read("GenericDNSServers"),
            Some(RegValue::String("198.18.0.53".into()).data())
        );
        assert_eq!(
            read("Name"),
            Some(RegValue::MultiString(vec![".".into()]).data())
        );
        values::delete_nrpt_rule(&mut Hklm, &key).expect("delete the rule");
        assert_eq!(read("ConfigOptions"), None, "the rule is gone");
        values::delete_nrpt_rule(&mut Hklm, &key).expect("deleting a missing rule is fine");
        assert!(values::delete_nrpt_rule(&mut Hklm, values::NRPT_BASE).is_err());
    }
}
