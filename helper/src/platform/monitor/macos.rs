//! macOS: the network monitor's notifications from a routing socket (`PF_ROUTE`, as `route -n
//! monitor` reads), one message per read. Only the fixed headers are read, never the socket
//! addresses after them: a route message's destination is not parsed, so a route through a
//! gateway that is not a host route is taken for a default route (which is what moves when the
//! network changes; Warren's own endpoint routes are host routes, its `/1` halves go through the
//! tunnel's interface), an address message gives its interface, and an interface message its
//! up/running flags (the reading is [`super::macos_messages`], tested on every OS). Compiled
//! and linted here; never run on a Mac yet.

use super::macos_messages::observe;
use super::Observation;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;

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
