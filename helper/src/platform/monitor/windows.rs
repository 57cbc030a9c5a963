//! Windows: the network monitor's notifications from the IP Helper API —
//! `NotifyRouteChange2` (routes), `NotifyUnicastIpAddressChange` (addresses) and
//! `NotifyIpInterfaceChange` (interfaces), each for both families. Windows calls the callbacks
//! on threads of its own; each turns its row into an [`Observation`] and sends it down a
//! channel to [`Source::next`]. Dropping the source cancels the three registrations
//! (`CancelMibChangeNotify2` waits for running callbacks) before the channel's sender goes.
//! Compiled, linted and built here; never run on Windows yet (Wine does not deliver these).

use super::{Observation, MAIN_TABLE};
use std::ffi::c_void;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tokio::sync::mpsc;
use windows_sys::Win32::Foundation::{HANDLE, NO_ERROR};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    CancelMibChangeNotify2, MibDeleteInstance, NotifyIpInterfaceChange, NotifyRouteChange2,
    NotifyUnicastIpAddressChange, MIB_IPFORWARD_ROW2, MIB_IPINTERFACE_ROW, MIB_NOTIFICATION_TYPE,
    MIB_UNICASTIPADDRESS_ROW,
};
use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6, AF_UNSPEC, SOCKADDR_INET};

type Sender = mpsc::UnboundedSender<Observation>;

/// The three registrations and the channel their callbacks send on.
pub struct Source {
    handles: Vec<HANDLE>,
    /// The callbacks' context: a sender, boxed so its address stays put until every
    /// registration is cancelled.
    context: *mut Sender,
    observations: mpsc::UnboundedReceiver<Observation>,
}

// SAFETY: the handles are only passed to CancelMibChangeNotify2, from whichever thread drops
// the source; the context is only read by the callbacks (an UnboundedSender is Sync) until then.
unsafe impl Send for Source {}

impl Drop for Source {
    fn drop(&mut self) {
        for handle in self.handles.drain(..) {
            // SAFETY: a handle from a successful Notify* call, cancelled once; the call waits
            // for callbacks in progress, so none runs after it.
            unsafe { CancelMibChangeNotify2(handle) };
        }
        // SAFETY: from Box::into_raw in `open`; no callback can use it any more.
        drop(unsafe { Box::from_raw(self.context) });
    }
}

impl super::Source for Source {
    async fn open() -> io::Result<Self> {
        let (tx, observations) = mpsc::unbounded_channel();
        let mut source = Source {
            handles: Vec::new(),
            context: Box::into_raw(Box::new(tx)),
            observations,
        };
        let context = source.context as *const c_void;
        let mut handle: HANDLE = std::ptr::null_mut();
        // SAFETY: valid callback and context (alive until the registration is cancelled in
        // Drop), and an out pointer to a local.
        let status =
            unsafe { NotifyRouteChange2(AF_UNSPEC, Some(on_route), context, false, &mut handle) };
        check(status, "NotifyRouteChange2")?;
        source.handles.push(handle);
        // SAFETY: as above.
        let status = unsafe {
            NotifyUnicastIpAddressChange(AF_UNSPEC, Some(on_address), context, false, &mut handle)
        };
        check(status, "NotifyUnicastIpAddressChange")?;
        source.handles.push(handle);
        // SAFETY: as above.
        let status = unsafe {
            NotifyIpInterfaceChange(AF_UNSPEC, Some(on_interface), context, false, &mut handle)
        };
        check(status, "NotifyIpInterfaceChange")?;
        source.handles.push(handle);
        Ok(source)
    }

    async fn next(&mut self) -> io::Result<Vec<Observation>> {
        match self.observations.recv().await {
            Some(observation) => Ok(vec![observation]),
            None => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the IP Helper notifications stopped",
            )),
        }
    }
}

/// The tunnel interface's index, if it exists.
pub fn index_of(ifname: &str) -> Option<u32> {
    crate::sys::windows::net::index_from_alias(ifname).ok()
}

fn check(status: u32, call: &str) -> io::Result<()> {
    if status == NO_ERROR {
        Ok(())
    } else {
        let code = i32::try_from(status).unwrap_or(i32::MAX);
        Err(io::Error::new(
            io::Error::from_raw_os_error(code).kind(),
            format!("{call} failed: {}", io::Error::from_raw_os_error(code)),
        ))
    }
}

/// Sends `observation` to the source whose sender `context` is.
///
/// # Safety
/// `context` is the source's boxed sender, alive while its registrations are.
unsafe fn send(context: *const c_void, observation: Observation) {
    // SAFETY: the caller's contract.
    let sender = unsafe { &*(context as *const Sender) };
    let _ = sender.send(observation);
}

unsafe extern "system" fn on_route(
    context: *const c_void,
    row: *const MIB_IPFORWARD_ROW2,
    kind: MIB_NOTIFICATION_TYPE,
) {
    // SAFETY: Windows passes a valid row (or null) for the duration of the call.
    let Some(row) = (unsafe { row.as_ref() }) else {
        return;
    };
    let observation = Observation::Route {
        table: MAIN_TABLE,
        prefix_len: row.DestinationPrefix.PrefixLength,
        index: Some(row.InterfaceIndex),
        added: kind != MibDeleteInstance,
    };
    // SAFETY: the context registered with this callback.
    unsafe { send(context, observation) };
}

unsafe extern "system" fn on_address(
    context: *const c_void,
    row: *const MIB_UNICASTIPADDRESS_ROW,
    kind: MIB_NOTIFICATION_TYPE,
) {
    // SAFETY: Windows passes a valid row (or null) for the duration of the call.
    let Some(row) = (unsafe { row.as_ref() }) else {
        return;
    };
    let observation = Observation::Address {
        index: row.InterfaceIndex,
        address: ip_of(&row.Address),
        added: kind != MibDeleteInstance,
    };
    // SAFETY: the context registered with this callback.
    unsafe { send(context, observation) };
}

unsafe extern "system" fn on_interface(
    context: *const c_void,
    row: *const MIB_IPINTERFACE_ROW,
    kind: MIB_NOTIFICATION_TYPE,
) {
    // SAFETY: Windows passes a valid row (or null) for the duration of the call.
    let Some(row) = (unsafe { row.as_ref() }) else {
        return;
    };
    let observation = Observation::Link {
        index: row.InterfaceIndex,
        name: None,
        running: kind != MibDeleteInstance && row.Connected,
    };
    // SAFETY: the context registered with this callback.
    unsafe { send(context, observation) };
}

fn ip_of(address: &SOCKADDR_INET) -> Option<IpAddr> {
    // SAFETY: si_family is the first field of every member of the union.
    let family = unsafe { address.si_family };
    match family {
        // SAFETY: the family says which member is set.
        AF_INET => Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(unsafe {
            address.Ipv4.sin_addr.S_un.S_addr
        })))),
        // SAFETY: as above.
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(unsafe {
            address.Ipv6.sin6_addr.u.Byte
        }))),
        _ => None,
    }
}
