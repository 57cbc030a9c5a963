//! The macOS network monitor's reading of routing-socket messages ([`super::macos`]): only the
//! fixed headers (`rt_msghdr`, `ifa_msghdr`, `if_msghdr`), as [`Observation`]s. No system call,
//! so it is compiled and unit-tested on every OS (only macOS reads such messages).

use super::{Observation, MAIN_TABLE};

// <net/route.h> message types and route flags, <net/if.h> interface flags.
const RTM_ADD: u8 = 0x1;
const RTM_DELETE: u8 = 0x2;
const RTM_CHANGE: u8 = 0x3;
const RTM_NEWADDR: u8 = 0xc;
const RTM_DELADDR: u8 = 0xd;
const RTM_IFINFO: u8 = 0xe;
const RTF_GATEWAY: i32 = 0x2;
const RTF_HOST: i32 = 0x4;
const IFF_UP: i32 = 0x1;
const IFF_RUNNING: i32 = 0x40;

fn u16_at(message: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        message.get(offset..offset + 2)?.try_into().ok()?,
    ))
}

fn i32_at(message: &[u8], offset: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(
        message.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

/// One routing message as an [`Observation`]. Layouts: `rt_msghdr` has the index at 4 and the
/// flags at 8; `ifa_msghdr` and `if_msghdr` have the flags at 8 and the index at 12.
pub(super) fn observe(message: &[u8]) -> Option<Observation> {
    let kind = *message.get(3)?;
    match kind {
        RTM_ADD | RTM_DELETE | RTM_CHANGE => {
            let index = u32::from(u16_at(message, 4)?);
            let flags = i32_at(message, 8)?;
            let default = flags & RTF_GATEWAY != 0 && flags & RTF_HOST == 0;
            Some(Observation::Route {
                table: MAIN_TABLE,
                prefix_len: if default { 0 } else { 32 },
                index: (index != 0).then_some(index),
                added: kind != RTM_DELETE,
            })
        }
        RTM_NEWADDR | RTM_DELADDR => Some(Observation::Address {
            index: u32::from(u16_at(message, 12)?),
            address: None,
            added: kind == RTM_NEWADDR,
        }),
        RTM_IFINFO => {
            let flags = i32_at(message, 8)?;
            Some(Observation::Link {
                index: u32::from(u16_at(message, 12)?),
                name: None,
                running: flags & IFF_UP != 0 && flags & IFF_RUNNING != 0,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message of `kind` with `u16` `index` at `index_at` and `flags` at 8, the rest zero.
    fn message(kind: u8, index_at: usize, index: u16, flags: i32) -> Vec<u8> {
        let mut m = vec![0u8; 92];
        m[0..2].copy_from_slice(&92u16.to_ne_bytes());
        m[2] = 5; // RTM_VERSION
        m[3] = kind;
        m[index_at..index_at + 2].copy_from_slice(&index.to_ne_bytes());
        m[8..12].copy_from_slice(&flags.to_ne_bytes());
        m
    }

    #[test]
    fn a_gateway_route_that_is_not_a_host_route_reads_as_a_default_route() {
        let route = |kind, flags| observe(&message(kind, 4, 7, flags));
        assert_eq!(
            route(RTM_ADD, RTF_GATEWAY),
            Some(Observation::Route {
                table: MAIN_TABLE,
                prefix_len: 0,
                index: Some(7),
                added: true,
            })
        );
        assert_eq!(
            route(RTM_DELETE, RTF_GATEWAY | RTF_HOST),
            Some(Observation::Route {
                table: MAIN_TABLE,
                prefix_len: 32,
                index: Some(7),
                added: false,
            }),
            "an endpoint host route is not a default route"
        );
        assert!(matches!(
            route(RTM_CHANGE, 0),
            Some(Observation::Route {
                prefix_len: 32,
                added: true,
                ..
            })
        ));
        let no_index = observe(&message(RTM_ADD, 4, 0, RTF_GATEWAY));
        assert!(matches!(
            no_index,
            Some(Observation::Route { index: None, .. })
        ));
    }

    #[test]
    fn address_and_interface_messages_give_their_interface() {
        assert_eq!(
            observe(&message(RTM_NEWADDR, 12, 4, 0)),
            Some(Observation::Address {
                index: 4,
                address: None,
                added: true,
            })
        );
        assert_eq!(
            observe(&message(RTM_DELADDR, 12, 4, 0)),
            Some(Observation::Address {
                index: 4,
                address: None,
                added: false,
            })
        );
        let link = |flags| observe(&message(RTM_IFINFO, 12, 9, flags));
        assert_eq!(
            link(IFF_UP | IFF_RUNNING),
            Some(Observation::Link {
                index: 9,
                name: None,
                running: true,
            })
        );
        assert!(matches!(
            link(IFF_UP),
            Some(Observation::Link { running: false, .. })
        ));
    }

    #[test]
    fn other_and_short_messages_are_ignored() {
        assert_eq!(observe(&message(0x7, 4, 1, 0)), None, "RTM_LOSING");
        assert_eq!(observe(&[]), None);
        assert_eq!(
            observe(&message(RTM_ADD, 4, 1, 0)[..6]),
            None,
            "cut before the flags"
        );
        assert_eq!(
            observe(&message(RTM_NEWADDR, 12, 1, 0)[..12]),
            None,
            "cut before the index"
        );
    }
}
