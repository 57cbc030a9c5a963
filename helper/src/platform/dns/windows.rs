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
//!   block (the WFP filters in `firewall/windows.rs`).

use super::{journal, DnsChange, DnsMethod, DnsOps, DnsPlan, DnsPlanError};
use crate::sys::windows::net as winnet;
use anyhow::{anyhow, bail, Context as _};
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

/// Where NRPT rules live (under `HKEY_LOCAL_MACHINE`).
const NRPT_BASE: &str = r"SOFTWARE\Policies\Microsoft\Windows NT\DNSClient\DnsPolicyConfig";
/// The prefix of Warren's rule keys.
const NRPT_PREFIX: &str = "Warren-";
/// `ConfigOptions` for a rule with generic DNS servers.
const NRPT_GENERIC_DNS_SERVERS: u32 = 0x8;
/// The NRPT rule format version.
const NRPT_VERSION: u32 = 2;

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
            let key = nrpt_key(&plan.ifname);
            journal(
                record,
                DnsChange::NrptRule {
                    ifname: plan.ifname.clone(),
                    key: key.clone(),
                },
            )?;
            write_nrpt_rule(&key, &plan.servers)
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
                check_nrpt_key(key)?;
                delete_key(key).with_context(|| format!("failed to delete HKLM\\{key}"))?;
                refresh_policy();
                Ok(())
            }
            other => Err(anyhow!(
                "cannot undo {other:?} on Windows: it was made by another OS's DNS method"
            )),
        }
    }
}

/// The NRPT rule key of tunnel `ifname`, relative to `HKEY_LOCAL_MACHINE`.
fn nrpt_key(ifname: &str) -> String {
    format!(r"{NRPT_BASE}\{NRPT_PREFIX}{ifname}")
}

/// Refuses to touch any key but one of Warren's rules directly under [`NRPT_BASE`].
fn check_nrpt_key(key: &str) -> anyhow::Result<()> {
    let name = key
        .strip_prefix(NRPT_BASE)
        .and_then(|rest| rest.strip_prefix('\\'))
        .unwrap_or_default();
    let ok = name.strip_prefix(NRPT_PREFIX).is_some_and(|ifname| {
        !ifname.is_empty() && !ifname.contains('\\') && !ifname.contains('/')
    });
    if !ok {
        bail!("refusing to delete HKLM\\{key}: it is not a Warren NRPT rule");
    }
    Ok(())
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
    let list = |v6: bool| {
        servers
            .iter()
            .filter(|ip| ip.to_canonical().is_ipv6() == v6)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut v4_servers = wide(&list(false));
    let mut v6_servers = wide(&list(true));
    let mut search = wide(&search.join(","));
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

    fn set(&self, name: &str, kind: REG_VALUE_TYPE, data: &[u8]) -> io::Result<()> {
        let name = wide(name);
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "registry value too long"))?;
        // SAFETY: the key is open for writing; `name` is NUL-terminated UTF-16 and `data` holds
        // `len` bytes, both outliving the call.
        check(unsafe { RegSetValueExW(self.0, name.as_ptr(), 0, kind, data.as_ptr(), len) })
    }

    fn set_string(&self, name: &str, value: &str) -> io::Result<()> {
        self.set(name, REG_SZ, &utf16_bytes(&wide(value)))
    }

    fn set_dword(&self, name: &str, value: u32) -> io::Result<()> {
        self.set(name, REG_DWORD, &value.to_le_bytes())
    }

    fn set_multi_string(&self, name: &str, values: &[&str]) -> io::Result<()> {
        let mut units: Vec<u16> = Vec::new();
        for value in values {
            units.extend(value.encode_utf16());
            units.push(0);
        }
        units.push(0);
        self.set(name, REG_MULTI_SZ, &utf16_bytes(&units))
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

fn utf16_bytes(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|unit| unit.to_le_bytes()).collect()
}

fn write_nrpt_rule(key: &str, servers: &[IpAddr]) -> io::Result<()> {
    // The base stays (stable, empty when no rule is left); the rule itself is volatile.
    drop(Key::create(NRPT_BASE, false)?);
    let rule = Key::create(key, true)?;
    let servers = servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";");
    rule.set_dword("Version", NRPT_VERSION)?;
    rule.set_multi_string("Name", &["."])?;
    rule.set_string("GenericDNSServers", &servers)?;
    rule.set_dword("ConfigOptions", NRPT_GENERIC_DNS_SERVERS)?;
    rule.set_string("IPSECCARestriction", "")?;
    rule.set_string("Comment", "Warren: all names through the tunnel")?;
    Ok(())
}

/// Deletes `key` and its values; a key that is not there is fine.
fn delete_key(key: &str) -> io::Result<()> {
    let path = wide(key);
    // SAFETY: `path` is NUL-terminated UTF-16 that outlives the call.
    let code = unsafe { RegDeleteTreeW(HKEY_LOCAL_MACHINE, path.as_ptr()) };
    if code == ERROR_FILE_NOT_FOUND {
        return Ok(());
    }
    check(code)
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

    #[test]
    fn only_warren_rules_may_be_deleted() {
        assert!(check_nrpt_key(&nrpt_key("wg0")).is_ok());
        for bad in [
            NRPT_BASE.to_string(),
            format!(r"{NRPT_BASE}\Other"),
            format!(r"{NRPT_BASE}\Warren-"),
            format!(r"{NRPT_BASE}\Warren-wg0\deeper"),
            r"SOFTWARE\Microsoft\Windows Defender".to_string(),
        ] {
            assert!(check_nrpt_key(&bad).is_err(), "accepted {bad}");
        }
    }
}
