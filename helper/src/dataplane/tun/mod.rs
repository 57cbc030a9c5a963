//! The TUN side of the data plane: the [`TunDevice`] trait the driver reads and writes through,
//! the per-OS device behind it ([`device`]), and receive-side coalescing for the Linux device
//! with offloads ([`gro`]).

pub mod device;
pub mod gro;

pub use device::{check, create};

use super::batch::{TunReadBatch, TunWriteBatch};
use std::future::Future;
use std::io;

/// The TUN side as the driver sees it: read packets, write packets without waiting.
pub trait TunDevice {
    /// Waits for the next read and puts its packets into `batch`.
    fn recv(&self, batch: &mut TunReadBatch) -> impl Future<Output = io::Result<()>>;
    /// Reads now into `batch`, or fails with `WouldBlock` when nothing is pending.
    fn try_recv(&self, batch: &mut TunReadBatch) -> io::Result<()>;
    /// Writes the batch's packets now; those that do not fit in the kernel's queue are dropped.
    fn send(&self, batch: &mut TunWriteBatch) -> io::Result<()>;
    /// Which coalesced super-packets the device takes (behind a virtio-net header).
    fn coalescing(&self) -> gro::Coalescing {
        gro::Coalescing::Off
    }
}
