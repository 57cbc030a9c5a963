//! macOS: the network monitor's notifications from a routing socket (`PF_ROUTE`, as `route -n
//! monitor` reads), one message per read. Only the fixed headers are read, never the socket
//! addresses after them: a route message's destination is not parsed, so a route through a
//! gateway that is not a host route is taken for a default route (which is what moves when the
//! network changes; Warren's own endpoint routes are host routes, its `/1` halves go through the
//! tunnel's interface), an address message gives its interface, and an interface message its
//! up/running flags. Compiled and linted here; never run on a Mac yet.

use super::{Observation, MAIN_TABLE};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;

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

/// A routing message is at most a few hundred bytes; this holds any.
const BUFFER_LEN: usize = 2048;

/// The routing socket.
pub struct Source {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl super::Source for Source {
    async fn open() -> io::Result<Self> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let raw = unsafe { libc::socket(libc::PF_ROUTE, libc::SOCK_RAW, libc::AF_UNSPEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: fcntl on a descriptor we own; flags read as the API says.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above; the flags written are the ones read plus O_NONBLOCK.
        let set = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
        if set < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the AsyncFd owns `fd` (an OwnedFd), so the descriptor stays open and the same
        // for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Source {
            fd,
            buf: vec![0; BUFFER_LEN],
        })
    }

    async fn next(&mut self) -> io::Result<Vec<Observation>> {
        loop {
            let mut guard = self.fd.readable().await?;
            let buf = &mut self.buf;
            let read = guard.try_io(|fd| {
                // SAFETY: reads at most `buf.len()` bytes into `buf`, which we own.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                usize::try_from(n).map_err(|_| io::Error::last_os_error())
            });
            match read {
                Ok(Ok(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the routing socket closed",
                    ))
                }
                Ok(Ok(n)) => return Ok(observe(&self.buf[..n]).into_iter().collect()),
                Ok(Err(err)) => return Err(err),
                Err(_would_block) => continue,
            }
        }
    }
}

/// The tunnel interface's index, if it exists.
pub fn index_of(ifname: &str) -> Option<u32> {
    let name = std::ffi::CString::new(ifname).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

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
fn observe(message: &[u8]) -> Option<Observation> {
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
