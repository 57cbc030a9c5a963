//! Creating the tunnel's TUN interface, the one step of bringing a tunnel up whose naming rules
//! and I/O abilities differ per OS. This module owns the per-OS choices and the error messages
//! that say what to fix.
//!
//! - Linux: `/dev/net/tun`, named as asked (`wg0`), created by the `tun-rs` crate with
//!   `IFF_VNET_HDR` and the TCP/UDP segmentation offloads (TSO, USO), so one read returns a 64 KiB
//!   super-packet and one write can carry many coalesced segments (see
//!   [`crate::dataplane::driver`]). The `tun` crate used elsewhere cannot open a device with a
//!   virtio-net header. If the kernel refuses the offloads the device is opened without them and
//!   the driver moves one packet per read, as before.
//! - macOS: a `utun` control socket. The kernel names these `utunN` and nothing else, so a name
//!   like `wg0` cannot be honoured: a requested `utunN` is used as it is, anything else lets the
//!   kernel pick the next free unit (as `wireguard-go utun` does). The name the kernel chose is
//!   returned, and that is the name everything else must use — the platform layer's plan, the
//!   UAPI socket (`/var/run/wireguard/utunN.sock`, so `wg show utunN` works), the logs.
//! - Windows: a Wintun adapter named as asked. `wintun.dll` (from <https://www.wintun.net/>, signed
//!   by WireGuard LLC; it cannot be downloaded by the build) must sit next to `warren-helper.exe`;
//!   it is loaded by its full path there, never through the DLL search path, so a DLL planted in
//!   the working directory or on `PATH` is not picked up.
//!
//! The device disappears when the returned value is dropped (its file descriptor or Wintun session
//! closes), taking its addresses and routes with it.

#[cfg(target_os = "linux")]
use super::gro;
use super::TunDevice;
use crate::dataplane::batch::{TunReadBatch, TunWriteBatch};
#[cfg(target_os = "linux")]
use crate::dataplane::batch::{MAX_PACKET_LEN, TUN_BATCH};
use anyhow::Context as _;
use std::io;

/// The TUN device type on this OS, as the driver uses it.
#[cfg(target_os = "linux")]
pub type Tun = tun_rs::AsyncDevice;
/// The TUN device type on this OS, as the driver uses it.
#[cfg(not(target_os = "linux"))]
pub type Tun = tun::AsyncDevice;

/// A new TUN interface and the name the OS gave it.
pub struct CreatedTun {
    /// The device, ready for the driver.
    pub device: Tun,
    /// The interface's real name (on macOS `utunN`, whatever was asked).
    pub name: String,
}

/// Whether a TUN interface for `requested` can be created here at all, checked before the first
/// change to the system, so that a missing driver is reported as such (a missing feature) and
/// changes nothing: on Windows, that `wintun.dll` is next to `warren-helper.exe`. Nothing to
/// check ahead on the other OSes.
pub fn check(requested: &str) -> anyhow::Result<()> {
    #[cfg(windows)]
    imp::wintun_dll(requested)?;
    #[cfg(not(windows))]
    let _ = requested;
    Ok(())
}

/// Creates the TUN interface for a tunnel that the user calls `requested`.
#[cfg(target_os = "linux")]
pub fn create(requested: &str) -> anyhow::Result<CreatedTun> {
    let build = |offload: bool| {
        tun_rs::DeviceBuilder::new()
            .name(requested)
            .offload(offload)
            // The platform layer sets the link up once its addresses are in place.
            .enable(false)
            .build_async()
    };
    let device = match build(true) {
        Ok(device) => device,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(
                "{requested}: the kernel refused TUN offloads ({e}); moving one packet per read"
            );
            build(false).with_context(|| imp::failure_hint(requested))?
        }
        Err(e) => return Err(e).with_context(|| imp::failure_hint(requested)),
    };
    let name = device.name().with_context(|| {
        format!("failed to read the name of the new TUN interface for {requested}")
    })?;
    Ok(CreatedTun { device, name })
}

/// Creates the TUN interface for a tunnel that the user calls `requested`.
#[cfg(not(target_os = "linux"))]
pub fn create(requested: &str) -> anyhow::Result<CreatedTun> {
    use tun::AbstractDevice as _;
    let mut config = tun::Configuration::default();
    imp::configure(&mut config, requested)?;
    let device = tun::create_as_async(&config).with_context(|| imp::failure_hint(requested))?;
    let name = device.tun_name().with_context(|| {
        format!("failed to read the name of the new TUN interface for {requested}")
    })?;
    if name != requested {
        tracing::info!("{requested}: the TUN interface is {name}");
    }
    Ok(CreatedTun { device, name })
}

/// The Windows data plane under Wine, against a real peer (`tests/windows/tunnel.sh`).
#[cfg(all(test, windows))]
#[path = "wine_tunnel.rs"]
mod wine_tunnel;

#[cfg(target_os = "linux")]
mod imp {
    pub(super) fn failure_hint(requested: &str) -> String {
        format!(
            "failed to create TUN interface {requested} (does it exist already? are you root, \
             and is /dev/net/tun available?)"
        )
    }
}

#[cfg(target_os = "macos")]
mod imp {
    pub(super) fn configure(
        config: &mut tun::Configuration,
        requested: &str,
    ) -> anyhow::Result<()> {
        if is_utun_name(requested) {
            config.tun_name(requested);
        }
        // Otherwise no name: the kernel picks the next free utunN.
        Ok(())
    }

    pub(super) fn failure_hint(requested: &str) -> String {
        if is_utun_name(requested) {
            format!("failed to create TUN interface {requested} (is it in use? are you root?)")
        } else {
            format!("failed to create a utun interface for {requested} (are you root?)")
        }
    }

    /// `utun` followed by a unit number, the only names the utun driver accepts.
    fn is_utun_name(name: &str) -> bool {
        name.strip_prefix("utun").is_some_and(|unit| {
            !unit.is_empty() && unit.len() <= 4 && unit.bytes().all(|b| b.is_ascii_digit())
        })
    }
}

#[cfg(windows)]
mod imp {
    use anyhow::Context as _;
    use std::path::PathBuf;

    /// The Wintun driver's user-mode library.
    const WINTUN_DLL: &str = "wintun.dll";

    pub(super) fn configure(
        config: &mut tun::Configuration,
        requested: &str,
    ) -> anyhow::Result<()> {
        let dll = wintun_dll(requested)?;
        config.tun_name(requested);
        config.platform_config(|p| {
            p.wintun_file(dll.as_os_str());
        });
        Ok(())
    }

    pub(super) fn failure_hint(requested: &str) -> String {
        format!(
            "failed to create Wintun adapter {requested} (is this process running as an \
             Administrator? is wintun.dll the right architecture?)"
        )
    }

    /// The `wintun.dll` to load, or why there is none.
    pub(super) fn wintun_dll(requested: &str) -> anyhow::Result<PathBuf> {
        let dll = wintun_path()?;
        if !dll.is_file() {
            anyhow::bail!(
                "cannot create TUN interface {requested}: {} is missing; download Wintun from \
                 https://www.wintun.net/ and put the wintun.dll for this architecture next to \
                 warren-helper.exe",
                dll.display()
            );
        }
        Ok(dll)
    }

    /// `wintun.dll` in the directory of the running executable.
    fn wintun_path() -> anyhow::Result<PathBuf> {
        let exe = std::env::current_exe().context("failed to find the helper's own path")?;
        let dir = exe
            .parent()
            .with_context(|| format!("{} has no parent directory", exe.display()))?;
        Ok(dir.join(WINTUN_DLL))
    }
}

/// Linux: the `tun-rs` device, with offloads when the kernel granted them.
#[cfg(target_os = "linux")]
impl TunDevice for tun_rs::AsyncDevice {
    async fn recv(&self, batch: &mut TunReadBatch) -> io::Result<()> {
        let mut buffers = split_storage(&mut batch.storage);
        let read = self
            .recv_multiple(&mut batch.raw, &mut buffers, &mut batch.sizes, 0)
            .await;
        split_result(batch, read)
    }

    fn try_recv(&self, batch: &mut TunReadBatch) -> io::Result<()> {
        let mut buffers = split_storage(&mut batch.storage);
        let read = self.try_recv_multiple(&mut batch.raw, &mut buffers, &mut batch.sizes, 0);
        split_result(batch, read)
    }

    fn send(&self, batch: &mut TunWriteBatch) -> io::Result<()> {
        let mut result = Ok(());
        for packet in batch.drain() {
            if let Err(e) = self.try_send(packet) {
                result = Err(e);
            }
        }
        result
    }

    fn coalescing(&self) -> gro::Coalescing {
        // The virtio-net header is there exactly when the kernel granted the TCP offloads.
        match (self.tcp_gso(), self.udp_gso()) {
            (false, _) => gro::Coalescing::Off,
            (true, false) => gro::Coalescing::Tcp,
            (true, true) => gro::Coalescing::TcpUdp,
        }
    }
}

/// A TUN read's outcome. A super-packet the device could not split (malformed offload metadata)
/// is one dropped read, not a failed device: only OS errors are passed on.
#[cfg(target_os = "linux")]
fn split_result(batch: &mut TunReadBatch, read: io::Result<usize>) -> io::Result<()> {
    match read {
        Ok(count) => {
            batch.count = count;
            Ok(())
        }
        Err(e) if e.raw_os_error().is_none() && e.kind() != io::ErrorKind::WouldBlock => {
            tracing::debug!("dropped a TUN read: {e}");
            batch.clear();
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// macOS and Windows: the `tun` crate's device, one packet per read and per write.
#[cfg(not(target_os = "linux"))]
impl TunDevice for tun::AsyncDevice {
    async fn recv(&self, batch: &mut TunReadBatch) -> io::Result<()> {
        let n = tun::AsyncDevice::recv(self, batch.single_buffer()).await?;
        batch.set_single(n);
        Ok(())
    }

    fn try_recv(&self, _batch: &mut TunReadBatch) -> io::Result<()> {
        // The crate offers no non-blocking read here: let the loop wait again.
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn send(&self, batch: &mut TunWriteBatch) -> io::Result<()> {
        // `AsyncDevice` derefs to the non-blocking device; a direct write never waits.
        let device = std::ops::Deref::deref(self);
        let mut result = Ok(());
        for packet in batch.drain() {
            if let Err(e) = device.send(packet) {
                result = Err(e);
            }
        }
        result
    }
}

/// The [`TunReadBatch`] storage as the separate buffers a batched read fills.
#[cfg(target_os = "linux")]
fn split_storage(storage: &mut [u8]) -> [&mut [u8]; TUN_BATCH] {
    let mut chunks = storage.chunks_mut(MAX_PACKET_LEN);
    std::array::from_fn(|_| chunks.next().unwrap_or_default())
}
