//! Windows only: safe wrappers around the IP Helper API (`iphlpapi.dll`) calls the helper makes —
//! interface lookups, unicast addresses, routes, the per-family interface MTU, the best default
//! route — and the `IP_UNICAST_IF` socket option. Shared by `platform::windows` (the network
//! steps), `dataplane::udp::egress` (keeping the tunnel's own UDP sockets off the tunnel) and the
//! Windows DNS module (which needs an interface's GUID).
//!
//! Every `unsafe` block is one FFI call (or one read of a C union the call filled in) with its
//! `// SAFETY:` reasoning. Errors are the Win32 error codes as `io::Error`s, so messages read as
//! Windows words them ("The object already exists."); [`is_not_found`]
//! names the codes the callers branch on.

use crate::sys::default_route::{self, InterfaceState, RouteRow};
use ipnet::IpNet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use windows_sys::core::GUID;
use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_NOT_FOUND, NO_ERROR, WIN32_ERROR,
};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    ConvertInterfaceAliasToLuid, ConvertInterfaceIndexToLuid, ConvertInterfaceLuidToGuid,
    ConvertInterfaceLuidToIndex, CreateIpForwardEntry2, CreateUnicastIpAddressEntry,
    DeleteIpForwardEntry2, DeleteUnicastIpAddressEntry, FreeMibTable, GetBestRoute2,
    GetIpForwardTable2, GetIpInterfaceEntry, InitializeIpForwardEntry, InitializeIpInterfaceEntry,
    InitializeUnicastIpAddressEntry, SetIpInterfaceEntry, MIB_IPFORWARD_ROW2, MIB_IPFORWARD_TABLE2,
    MIB_IPINTERFACE_ROW, MIB_UNICASTIPADDRESS_ROW,
};
use windows_sys::Win32::NetworkManagement::Ndis::NET_LUID_LH;
use windows_sys::Win32::Networking::WinSock::{
    setsockopt, IpDadStatePreferred, WSAGetLastError, ADDRESS_FAMILY, AF_INET, AF_INET6, IN6_ADDR,
    IN6_ADDR_0, IN_ADDR, IN_ADDR_0, IPPROTO_IP, IPPROTO_IPV6, IPV6_UNICAST_IF, IP_UNICAST_IF,
    MIB_IPPROTO_NETMGMT, SOCKADDR_IN, SOCKADDR_IN6, SOCKADDR_IN6_0, SOCKADDR_INET, SOCKET,
    SOCKET_ERROR,
};

/// An IP address family, as the IP Helper API numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `AF_INET`.
    V4,
    /// `AF_INET6`.
    V6,
}

impl Family {
    /// The family of `ip` (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn of(ip: IpAddr) -> Family {
        match ip.to_canonical() {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn raw(self) -> ADDRESS_FAMILY {
        match self {
            Family::V4 => AF_INET,
            Family::V6 => AF_INET6,
        }
    }
}

/// `Ok` for `NO_ERROR`, else the code as an `io::Error`.
fn check(code: WIN32_ERROR) -> io::Result<()> {
    if code == NO_ERROR {
        Ok(())
    } else {
        // Win32 error codes fit in an i32 (they are below 2^16).
        Err(io::Error::from_raw_os_error(code as i32))
    }
}

/// True for the codes that mean "no such object" (address, route, interface).
pub fn is_not_found(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(code) if code as u32 == ERROR_NOT_FOUND || code as u32 == ERROR_FILE_NOT_FOUND)
}

/// The LUID of the interface whose alias ("friendly name", the Wintun adapter's name) is `alias`.
fn raw_luid_from_alias(alias: &str) -> io::Result<NET_LUID_LH> {
    let wide: Vec<u16> = alias.encode_utf16().chain(Some(0)).collect();
    let mut luid = NET_LUID_LH::default();
    // SAFETY: `wide` is NUL-terminated UTF-16 and outlives the call; `luid` is a valid out-pointer.
    check(unsafe { ConvertInterfaceAliasToLuid(wide.as_ptr(), &mut luid) })?;
    Ok(luid)
}

/// The LUID, as its 64-bit value (what WFP conditions take), of the interface named `alias`.
pub fn luid_from_alias(alias: &str) -> io::Result<u64> {
    let luid = raw_luid_from_alias(alias)?;
    // SAFETY: NET_LUID_LH is a union over one u64; every bit pattern is a valid u64.
    Ok(unsafe { luid.Value })
}

/// The index of the interface named `alias`.
pub fn index_from_alias(alias: &str) -> io::Result<u32> {
    let luid = raw_luid_from_alias(alias)?;
    let mut index = 0u32;
    // SAFETY: `luid` was filled in above; `index` is a valid out-pointer.
    check(unsafe { ConvertInterfaceLuidToIndex(&luid, &mut index) })?;
    Ok(index)
}

/// The LUID of the interface with index `index`; [`is_not_found`] when there is none.
fn luid_from_index(index: u32) -> io::Result<NET_LUID_LH> {
    let mut luid = NET_LUID_LH::default();
    // SAFETY: `luid` is a valid out-pointer.
    check(unsafe { ConvertInterfaceIndexToLuid(index, &mut luid) })?;
    Ok(luid)
}

/// Whether an interface with index `index` exists.
pub fn interface_exists(index: u32) -> io::Result<bool> {
    match luid_from_index(index) {
        Ok(_) => Ok(true),
        Err(err) if is_not_found(&err) => Ok(false),
        // ConvertInterfaceIndexToLuid reports an unknown index as an invalid parameter.
        Err(err) if err.raw_os_error() == Some(87) => Ok(false),
        Err(err) => Err(err),
    }
}

/// The GUID of the interface with index `index` (what `SetInterfaceDnsSettings` and the
/// registry's `Interfaces\{GUID}` keys name it by).
pub fn guid_from_index(index: u32) -> io::Result<GUID> {
    let luid = luid_from_index(index)?;
    let mut guid = GUID {
        data1: 0,
        data2: 0,
        data3: 0,
        data4: [0; 8],
    };
    // SAFETY: `luid` is initialised; `guid` is a valid out-pointer.
    check(unsafe { ConvertInterfaceLuidToGuid(&luid, &mut guid) })?;
    Ok(guid)
}

/// `ip` as a `SOCKADDR_INET` with port 0.
fn sockaddr(ip: IpAddr) -> SOCKADDR_INET {
    let mut address = SOCKADDR_INET::default();
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            address.Ipv4 = SOCKADDR_IN {
                sin_family: AF_INET,
                sin_port: 0,
                sin_addr: IN_ADDR {
                    S_un: IN_ADDR_0 {
                        // In network byte order: the octets as they are in memory.
                        S_addr: u32::from_ne_bytes(v4.octets()),
                    },
                },
                sin_zero: [0; 8],
            }
        }
        IpAddr::V6(v6) => {
            address.Ipv6 = SOCKADDR_IN6 {
                sin6_family: AF_INET6,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: IN6_ADDR {
                    u: IN6_ADDR_0 { Byte: v6.octets() },
                },
                Anonymous: SOCKADDR_IN6_0 { sin6_scope_id: 0 },
            }
        }
    }
    address
}

/// The unspecified address of `family`, as a next hop: "on-link, through the interface".
fn on_link(family: Family) -> SOCKADDR_INET {
    sockaddr(match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    })
}

fn address_row(index: u32, address: IpNet) -> MIB_UNICASTIPADDRESS_ROW {
    let mut row = MIB_UNICASTIPADDRESS_ROW::default();
    // SAFETY: `row` is a valid, writable MIB_UNICASTIPADDRESS_ROW.
    unsafe { InitializeUnicastIpAddressEntry(&mut row) };
    row.InterfaceIndex = index;
    row.Address = sockaddr(address.addr());
    row.OnLinkPrefixLength = address.prefix_len();
    row.DadState = IpDadStatePreferred;
    row
}

/// Adds `address` (with its on-link prefix length) to the interface.
pub fn add_address(index: u32, address: IpNet) -> io::Result<()> {
    let row = address_row(index, address);
    // SAFETY: `row` is a fully initialised row that outlives the call.
    check(unsafe { CreateUnicastIpAddressEntry(&row) })
}

/// Removes `address` from the interface.
pub fn delete_address(index: u32, address: IpNet) -> io::Result<()> {
    let row = address_row(index, address);
    // SAFETY: `row` is a fully initialised row that outlives the call.
    check(unsafe { DeleteUnicastIpAddressEntry(&row) })
}

/// The interface's per-family settings; [`is_not_found`] when the family is not enabled on it.
fn interface_row(index: u32, family: Family) -> io::Result<MIB_IPINTERFACE_ROW> {
    let mut row = MIB_IPINTERFACE_ROW::default();
    // SAFETY: `row` is a valid, writable MIB_IPINTERFACE_ROW.
    unsafe { InitializeIpInterfaceEntry(&mut row) };
    row.Family = family.raw();
    row.InterfaceIndex = index;
    // SAFETY: `row` names the interface and family to read, and is writable.
    check(unsafe { GetIpInterfaceEntry(&mut row) })?;
    Ok(row)
}

/// Sets the interface's MTU for `family`.
pub fn set_mtu(index: u32, family: Family, mtu: u32) -> io::Result<()> {
    let mut row = interface_row(index, family)?;
    row.NlMtu = mtu;
    // SetIpInterfaceEntry refuses an IPv4 row whose SitePrefixLength is not 0 (documented).
    if family == Family::V4 {
        row.SitePrefixLength = 0;
    }
    // SAFETY: `row` was read by GetIpInterfaceEntry and only its MTU changed.
    check(unsafe { SetIpInterfaceEntry(&mut row) })
}

/// Sets the interface's metric for `family` to 0 and turns its automatic metric off (a full
/// tunnel's, as wireguard-windows does).
pub fn lower_metric(index: u32, family: Family) -> io::Result<()> {
    let mut row = interface_row(index, family)?;
    row.UseAutomaticMetric = false;
    row.Metric = 0;
    // SetIpInterfaceEntry refuses an IPv4 row whose SitePrefixLength is not 0 (documented).
    if family == Family::V4 {
        row.SitePrefixLength = 0;
    }
    // SAFETY: `row` was read by GetIpInterfaceEntry and only its metric fields changed.
    check(unsafe { SetIpInterfaceEntry(&mut row) })
}

fn route_row(index: u32, route: IpNet) -> MIB_IPFORWARD_ROW2 {
    let route = route.trunc();
    let mut row = MIB_IPFORWARD_ROW2::default();
    // SAFETY: `row` is a valid, writable MIB_IPFORWARD_ROW2.
    unsafe { InitializeIpForwardEntry(&mut row) };
    row.InterfaceIndex = index;
    row.DestinationPrefix.Prefix = sockaddr(route.addr());
    row.DestinationPrefix.PrefixLength = route.prefix_len();
    row.NextHop = on_link(Family::of(route.addr()));
    row.Metric = 0;
    row.Protocol = MIB_IPPROTO_NETMGMT;
    row
}

/// Adds an on-link route for `route` through the interface (like `route add <prefix> 0.0.0.0 if
/// <index>`): the interface's metric decides among equally specific routes.
pub fn add_route(index: u32, route: IpNet) -> io::Result<()> {
    let row = route_row(index, route);
    // SAFETY: `row` is a fully initialised row that outlives the call.
    check(unsafe { CreateIpForwardEntry2(&row) })
}

/// Removes a route added by [`add_route`].
pub fn delete_route(index: u32, route: IpNet) -> io::Result<()> {
    let row = route_row(index, route);
    // SAFETY: `row` is a fully initialised row that outlives the call.
    check(unsafe { DeleteIpForwardEntry2(&row) })
}

/// The MTU of the interface the best route to `destination` leaves by; `None` without a route.
pub fn route_mtu(destination: IpAddr) -> io::Result<Option<u32>> {
    let target = sockaddr(destination);
    let mut route = MIB_IPFORWARD_ROW2::default();
    let mut source = SOCKADDR_INET::default();
    // SAFETY: the LUID and source may be null (any interface, any source); `target` is a valid
    // address; `route` and `source` are valid out-pointers.
    let code = unsafe {
        GetBestRoute2(
            std::ptr::null(),
            0,
            std::ptr::null(),
            &target,
            0,
            &mut route,
            &mut source,
        )
    };
    match check(code) {
        Ok(()) => {}
        Err(err) if is_not_found(&err) => return Ok(None),
        // ERROR_NETWORK_UNREACHABLE (1231): no route at all.
        Err(err) if err.raw_os_error() == Some(1231) => return Ok(None),
        Err(err) => return Err(err),
    }
    let row = interface_row(route.InterfaceIndex, Family::of(destination))?;
    Ok((row.NlMtu > 0).then_some(row.NlMtu))
}

/// The interface that holds the best default route of `family` other than through `exclude` (the
/// tunnel's own index): lowest route metric + interface metric among connected interfaces, as
/// wireguard-windows chooses it (the choice: `sys::default_route`, tested on every OS). `None`
/// when there is no such route (offline).
pub fn best_default_interface(family: Family, exclude: u32) -> io::Result<Option<u32>> {
    let mut table: *mut MIB_IPFORWARD_TABLE2 = std::ptr::null_mut();
    // SAFETY: `table` is a valid out-pointer; on success the OS allocates the table, which is
    // freed below with FreeMibTable.
    check(unsafe { GetIpForwardTable2(family.raw(), &mut table) })?;
    let rows = {
        // SAFETY: on success `table` points at a MIB_IPFORWARD_TABLE2 with NumEntries rows laid
        // out contiguously from `Table`; the slice is copied out before the table is freed.
        unsafe {
            let count = (*table).NumEntries as usize;
            std::slice::from_raw_parts((*table).Table.as_ptr(), count).to_vec()
        }
    };
    // SAFETY: `table` came from GetIpForwardTable2 and is freed exactly once.
    unsafe { FreeMibTable(table.cast()) };

    let routes = rows.iter().map(|row| RouteRow {
        interface: row.InterfaceIndex,
        prefix_len: row.DestinationPrefix.PrefixLength,
        metric: row.Metric,
    });
    Ok(default_route::best_default_interface(
        routes,
        exclude,
        |index| {
            let interface = interface_row(index, family).ok()?;
            Some(InterfaceState {
                connected: interface.Connected,
                metric: interface.Metric,
            })
        },
    ))
}

/// Sets `IP_UNICAST_IF` (IPv4) or `IPV6_UNICAST_IF` (IPv6) on `socket`: its unicast datagrams
/// leave by interface `index` whatever the routing table prefers (0 clears it).
pub fn set_unicast_interface(socket: SOCKET, family: Family, index: u32) -> io::Result<()> {
    let (level, option, value) = match family {
        // IPv4 wants the index in network byte order, IPv6 in host order (documented quirk).
        Family::V4 => (IPPROTO_IP, IP_UNICAST_IF, index.to_be()),
        Family::V6 => (IPPROTO_IPV6, IPV6_UNICAST_IF, index),
    };
    // SAFETY: `value` is a u32 that outlives the call, and its size is passed as the length.
    let result = unsafe {
        setsockopt(
            socket,
            level,
            option,
            (&value as *const u32).cast(),
            std::mem::size_of::<u32>() as i32,
        )
    };
    if result == SOCKET_ERROR {
        // SAFETY: no preconditions; reads this thread's last Winsock error.
        return Err(io::Error::from_raw_os_error(unsafe { WSAGetLastError() }));
    }
    Ok(())
}
