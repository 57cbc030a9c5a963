//! The stub for every OS without a real platform module yet: every step fails with
//! [`Unsupported`] (the full-tunnel steps through the trait's default bodies), so `apply` refuses
//! before changing anything. Its full-tunnel method is Linux's (`FullTunnelMethod::native`), which
//! only decides what the refused plan would have been.

use super::{LinkInfo, NetworkOps, Removal, Unsupported};
use ipnet::IpNet;
use std::io;

const UNSUPPORTED: Unsupported = Unsupported {
    what: "configuring tunnel addresses, MTU and routes",
    os: std::env::consts::OS,
};

/// The stand-in for a real implementation.
pub(super) struct Ops;

fn unsupported<T>() -> io::Result<T> {
    Err(io::Error::new(io::ErrorKind::Unsupported, UNSUPPORTED))
}

impl NetworkOps for Ops {
    async fn connect() -> anyhow::Result<Self> {
        Err(UNSUPPORTED.into())
    }
    async fn link(&mut self, _ifname: &str) -> io::Result<LinkInfo> {
        unsupported()
    }
    async fn add_address(&mut self, _link: u32, _address: IpNet) -> io::Result<()> {
        unsupported()
    }
    async fn remove_address(&mut self, _link: u32, _address: IpNet) -> io::Result<Removal> {
        unsupported()
    }
    async fn set_mtu(&mut self, _link: u32, _mtu: u16) -> io::Result<()> {
        unsupported()
    }
    async fn set_up(&mut self, _link: u32) -> io::Result<()> {
        unsupported()
    }
    async fn add_route(&mut self, _link: u32, _route: IpNet, _table: u32) -> io::Result<()> {
        unsupported()
    }
    async fn remove_route(
        &mut self,
        _link: u32,
        _route: IpNet,
        _table: u32,
    ) -> io::Result<Removal> {
        unsupported()
    }
}
