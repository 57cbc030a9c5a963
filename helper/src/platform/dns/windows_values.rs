//! The decisions behind Windows' DNS steps, as plain functions tested on every OS: the server and
//! search lists `SetInterfaceDnsSettings` gets, the NRPT rule's key and values, their encoding as
//! registry data, and the undo's refusal of any key that is not one of Warren's rules. The
//! registry sits behind [`Registry`], so writing and deleting a rule runs against the in-memory
//! double in the tests here, and against `HKEY_LOCAL_MACHINE` in `windows.rs` (whose own test runs
//! it against Wine's registry).
//!
//! Anchors: wireguard-windows (`tunnel/addressconfig.go`, `winipcfg`'s `SetDNS`) and Mullvad
//! (`talpid-dns/src/windows/iphlpapi.rs`) both set the servers on the tunnel interface with
//! `SetInterfaceDnsSettings`, IPv4 and IPv6 in separate calls, and rely on the firewall to block
//! DNS to anyone else. Neither writes an NRPT rule; Warren adds one for a full tunnel (namespace
//! `.`, the tunnel's servers) so that Windows' multi-homed resolution does not also ask another
//! interface's resolver when the kill switch is off. Mullvad also flushes the resolver cache after
//! a change; Warren does not yet (names cached from before the tunnel keep their answers until
//! they expire).

use std::io;
use std::net::IpAddr;

/// Where NRPT rules live (under `HKEY_LOCAL_MACHINE`).
pub const NRPT_BASE: &str = r"SOFTWARE\Policies\Microsoft\Windows NT\DNSClient\DnsPolicyConfig";
/// The prefix of Warren's rule keys.
pub const NRPT_PREFIX: &str = "Warren-";
/// `ConfigOptions` for a rule with generic DNS servers.
pub const NRPT_GENERIC_DNS_SERVERS: u32 = 0x8;
/// The NRPT rule format version.
pub const NRPT_VERSION: u32 = 2;

/// A registry value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegValue {
    /// `REG_DWORD`.
    Dword(u32),
    /// `REG_SZ`.
    String(String),
    /// `REG_MULTI_SZ`.
    MultiString(Vec<String>),
}

impl RegValue {
    /// The value's data as the registry stores it: little-endian for a DWORD, NUL-terminated
    /// UTF-16LE for a string, each string NUL-terminated plus a final NUL for a multi-string.
    pub fn data(&self) -> Vec<u8> {
        let utf16 = |units: Vec<u16>| units.iter().flat_map(|u| u.to_le_bytes()).collect();
        match self {
            RegValue::Dword(value) => value.to_le_bytes().to_vec(),
            RegValue::String(text) => utf16(text.encode_utf16().chain(Some(0)).collect()),
            RegValue::MultiString(texts) => {
                let mut units: Vec<u16> = Vec::new();
                for text in texts {
                    units.extend(text.encode_utf16());
                    units.push(0);
                }
                units.push(0);
                utf16(units)
            }
        }
    }
}

/// The registry, as far as the NRPT rule needs it (keys relative to `HKEY_LOCAL_MACHINE`).
pub trait Registry {
    /// Creates `key` (and its parents) if it is not there; `volatile`: gone at the next boot.
    fn create_key(&mut self, key: &str, volatile: bool) -> io::Result<()>;
    /// Sets value `name` of the existing `key`.
    fn set_value(&mut self, key: &str, name: &str, value: &RegValue) -> io::Result<()>;
    /// Deletes `key` with its values and subkeys; a key that is not there is fine.
    fn delete_tree(&mut self, key: &str) -> io::Result<()>;
}

/// The servers of one family, comma-separated, as `SetInterfaceDnsSettings`' `NameServer` takes
/// them (IPv4-mapped IPv6 addresses count as IPv4). Empty: none (which clears them).
pub fn interface_servers(servers: &[IpAddr], v6: bool) -> String {
    servers
        .iter()
        .map(|ip| ip.to_canonical())
        .filter(|ip| ip.is_ipv6() == v6)
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The search list as `SetInterfaceDnsSettings`' `SearchList` takes it.
pub fn search_list(search: &[String]) -> String {
    search.join(",")
}

/// The NRPT rule key of tunnel `ifname`, relative to `HKEY_LOCAL_MACHINE`.
pub fn nrpt_key(ifname: &str) -> String {
    format!(r"{NRPT_BASE}\{NRPT_PREFIX}{ifname}")
}

/// The values of the NRPT rule that sends every name (`.`) to `servers`.
pub fn nrpt_values(servers: &[IpAddr]) -> Vec<(&'static str, RegValue)> {
    let servers = servers
        .iter()
        .map(|ip| ip.to_canonical().to_string())
        .collect::<Vec<_>>()
        .join(";");
    vec![
        ("Version", RegValue::Dword(NRPT_VERSION)),
        ("Name", RegValue::MultiString(vec![".".to_owned()])),
        ("GenericDNSServers", RegValue::String(servers)),
        ("ConfigOptions", RegValue::Dword(NRPT_GENERIC_DNS_SERVERS)),
        ("IPSECCARestriction", RegValue::String(String::new())),
        (
            "Comment",
            RegValue::String("Warren: all names through the tunnel".to_owned()),
        ),
    ]
}

/// Refuses any key but one of Warren's rules directly under [`NRPT_BASE`].
pub fn check_nrpt_key(key: &str) -> anyhow::Result<()> {
    let name = key
        .strip_prefix(NRPT_BASE)
        .and_then(|rest| rest.strip_prefix('\\'))
        .unwrap_or_default();
    let ok = name.strip_prefix(NRPT_PREFIX).is_some_and(|ifname| {
        !ifname.is_empty() && !ifname.contains('\\') && !ifname.contains('/')
    });
    if !ok {
        anyhow::bail!("refusing to delete HKLM\\{key}: it is not a Warren NRPT rule");
    }
    Ok(())
}

/// Writes the rule at `key` (from [`nrpt_key`]): the base key stays (stable, empty when no rule
/// is left), the rule itself is volatile, so a reboot removes it even if the helper never could.
pub fn write_nrpt_rule(
    registry: &mut impl Registry,
    key: &str,
    servers: &[IpAddr],
) -> io::Result<()> {
    registry.create_key(NRPT_BASE, false)?;
    registry.create_key(key, true)?;
    for (name, value) in nrpt_values(servers) {
        registry.set_value(key, name, &value)?;
    }
    Ok(())
}

/// Deletes the rule at `key`, after [`check_nrpt_key`]: a tampered journal cannot make the helper
/// delete any other key.
pub fn delete_nrpt_rule(registry: &mut impl Registry, key: &str) -> anyhow::Result<()> {
    check_nrpt_key(key)?;
    registry
        .delete_tree(key)
        .map_err(|err| anyhow::anyhow!("failed to delete HKLM\\{key}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The registry in memory: key → (volatile, values).
    #[derive(Default)]
    struct Memory {
        keys: BTreeMap<String, (bool, BTreeMap<String, RegValue>)>,
    }

    impl Registry for Memory {
        fn create_key(&mut self, key: &str, volatile: bool) -> io::Result<()> {
            self.keys
                .entry(key.to_owned())
                .or_insert_with(|| (volatile, BTreeMap::new()));
            Ok(())
        }
        fn set_value(&mut self, key: &str, name: &str, value: &RegValue) -> io::Result<()> {
            let (_, values) = self
                .keys
                .get_mut(key)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            values.insert(name.to_owned(), value.clone());
            Ok(())
        }
        fn delete_tree(&mut self, key: &str) -> io::Result<()> {
            let below = format!("{key}\\");
            self.keys
                .retain(|name, _| name != key && !name.starts_with(&below));
            Ok(())
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn the_interface_gets_each_family_in_its_own_list() {
        let servers = ips(&["198.18.0.53", "fd00::53", "::ffff:198.18.0.54", "fd00::54"]);
        assert_eq!(
            interface_servers(&servers, false),
            "198.18.0.53,198.18.0.54"
        );
        assert_eq!(interface_servers(&servers, true), "fd00::53,fd00::54");
        assert_eq!(interface_servers(&[], false), "", "empty clears");
        assert_eq!(
            search_list(&["corp.example".into(), "example".into()]),
            "corp.example,example"
        );
    }

    #[test]
    fn a_rule_is_written_volatile_with_its_values_and_deleted_alone() {
        let mut registry = Memory::default();
        registry
            .create_key(&format!(r"{NRPT_BASE}\Other"), false)
            .unwrap();
        let key = nrpt_key("office");
        write_nrpt_rule(&mut registry, &key, &ips(&["198.18.0.53", "fd00::53"])).unwrap();
        let (volatile, values) = &registry.keys[&key];
        assert!(*volatile);
        assert!(!registry.keys[NRPT_BASE].0, "the base key is not volatile");
        assert_eq!(values["Name"], RegValue::MultiString(vec![".".into()]));
        assert_eq!(
            values["GenericDNSServers"],
            RegValue::String("198.18.0.53;fd00::53".into())
        );
        assert_eq!(values["ConfigOptions"], RegValue::Dword(8));
        assert_eq!(values["Version"], RegValue::Dword(2));

        delete_nrpt_rule(&mut registry, &key).unwrap();
        assert!(!registry.keys.contains_key(&key));
        assert!(registry.keys.contains_key(&format!(r"{NRPT_BASE}\Other")));
        assert!(registry.keys.contains_key(NRPT_BASE));
        delete_nrpt_rule(&mut registry, &key).unwrap();
    }

    #[test]
    fn only_warren_rules_may_be_deleted() {
        let mut registry = Memory::default();
        let other = format!(r"{NRPT_BASE}\Other");
        registry.create_key(&other, false).unwrap();
        for bad in [
            NRPT_BASE.to_string(),
            other.clone(),
            format!(r"{NRPT_BASE}\Warren-"),
            format!(r"{NRPT_BASE}\Warren-wg0\deeper"),
            format!(r"{NRPT_BASE}\Warren-a/b"),
            r"SOFTWARE\Microsoft\Windows Defender".to_string(),
        ] {
            let err = delete_nrpt_rule(&mut registry, &bad).unwrap_err();
            assert!(err.to_string().contains("not a Warren NRPT rule"), "{err}");
        }
        assert!(registry.keys.contains_key(&other), "nothing was deleted");
    }

    #[test]
    fn values_are_encoded_as_the_registry_stores_them() {
        assert_eq!(RegValue::Dword(8).data(), [8, 0, 0, 0]);
        assert_eq!(RegValue::String("a".into()).data(), [b'a', 0, 0, 0]);
        assert_eq!(RegValue::String(String::new()).data(), [0, 0]);
        assert_eq!(
            RegValue::MultiString(vec![".".into(), "b".into()]).data(),
            [b'.', 0, 0, 0, b'b', 0, 0, 0, 0, 0]
        );
    }
}
