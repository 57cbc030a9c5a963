//! macOS: the primitive network steps with `ifconfig(8)` and `route(8)` — the same commands, with
//! the same arguments, that wg-quick's `darwin.bash` runs, so a Warren tunnel looks to the system
//! exactly like a wg-quick one.
//!
//! Why commands and not the routing socket and ioctls: the two tools are the stable, documented
//! interface (`SIOCAIFADDR_IN6` and the `rt_msghdr` layouts are partly private headers), their
//! behaviour on utun interfaces is what macOS users and wg-quick already rely on, and their
//! messages name the failure. The cost, a process per step, is paid only when a tunnel goes up or
//! down. Each command runs with an absolute path (`/sbin/...`), no shell and no input; on failure
//! its own output becomes the error, and the output that means "already there" (`File exists`) or
//! "already gone" (`not in table`, `Can't assign requested address`, `does not exist`) is mapped to
//! `io::ErrorKind::AlreadyExists` / `NotFound`, which the removals report as
//! [`Removal::AlreadyGone`].
//!
//! The steps, in wg-quick's words (`<if>` is the `utunN` name of the link's index):
//! - address: `ifconfig <if> inet <addr>/<len> <addr> alias` (IPv4: a point-to-point interface
//!   needs a destination, and wg-quick gives its own address), `ifconfig <if> inet6 <addr>/<len>
//!   alias`; removed with `ifconfig <if> inet|inet6 <addr> -alias`;
//! - MTU: `ifconfig <if> mtu <mtu>`; up: `ifconfig <if> up`;
//! - route: `route -n add -inet|-inet6 <prefix> -interface <if>`; removed with `route -n delete`
//!   and the same arguments;
//! - default gateway: `route -n get -inet|-inet6 default`'s `gateway:` (with its `interface:` as
//!   the scope of a link-local IPv6 next hop); none when it answers `not in table` or names no
//!   address (an interface route);
//! - endpoint host route: `route -n add -inet|-inet6 -host <endpoint> <gateway>` (wg-quick's
//!   `-gateway`, spelled as `route(8)` documents it); removed with `route -n delete` and the same
//!   arguments.
//!
//! macOS has no numbered routing tables like Linux's, no policy rules and no sysctl this layer
//! needs: a route in any table but [`MAIN_TABLE`] is refused (the planner already refuses a
//! numbered `Table`), and the rule and sysctl steps keep the trait's "unsupported" defaults. A full
//! tunnel on macOS is wg-quick's instead, planned by the planner
//! ([`super::FullTunnelMethod::Halves`]): routes for the two halves `0.0.0.0/1` + `128.0.0.0/1`
//! (and `::/1` + `8000::/1`), which win over the default route by being more specific, plus a host
//! route to each endpoint via the default gateway so the tunnel's own packets do not loop, moved
//! to the new default gateway when the network changes (`platform::replan`, fed by the network
//! monitor). The commands' arguments and the reading of their output are in
//! [`super::macos_commands`], compiled and tested on every OS.
//! [`NetworkOps::route_mtu`] is `route -n get <host>`'s `mtu` column.

use super::macos_commands::{
    add_address_args, classify, host_route_args, parse_route_get, remove_address_args, route_args,
    route_get_args,
};
use super::{Family, Gateway, LinkInfo, NetworkOps, Removal, MAIN_TABLE};
use ipnet::IpNet;
use std::ffi::{CStr, CString};
use std::io;
use std::net::IpAddr;
use std::process::Stdio;

const IFCONFIG: &str = "/sbin/ifconfig";
const ROUTE: &str = "/sbin/route";

/// The macOS implementation of the platform's network steps. Stateless: each step is a command.
pub(super) struct Ops;

impl NetworkOps for Ops {
    async fn connect() -> anyhow::Result<Self> {
        Ok(Ops)
    }

    async fn link(&mut self, ifname: &str) -> io::Result<LinkInfo> {
        Ok(LinkInfo {
            index: index_of(ifname)?,
        })
    }

    async fn add_address(&mut self, link: u32, address: IpNet) -> io::Result<()> {
        let ifname = name_of(link)?;
        run(IFCONFIG, &add_address_args(&ifname, address)).await
    }

    async fn remove_address(&mut self, link: u32, address: IpNet) -> io::Result<Removal> {
        let Some(ifname) = live_name_of(link)? else {
            return Ok(Removal::AlreadyGone);
        };
        removal(run(IFCONFIG, &remove_address_args(&ifname, address)).await)
    }

    async fn set_mtu(&mut self, link: u32, mtu: u16) -> io::Result<()> {
        let ifname = name_of(link)?;
        run(IFCONFIG, &[ifname, "mtu".into(), mtu.to_string()]).await
    }

    async fn set_up(&mut self, link: u32) -> io::Result<()> {
        let ifname = name_of(link)?;
        run(IFCONFIG, &[ifname, "up".into()]).await
    }

    async fn add_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<()> {
        check_table(table)?;
        let ifname = name_of(link)?;
        run(ROUTE, &route_args("add", route, &ifname)).await
    }

    async fn remove_route(&mut self, link: u32, route: IpNet, table: u32) -> io::Result<Removal> {
        check_table(table)?;
        let Some(ifname) = live_name_of(link)? else {
            return Ok(Removal::AlreadyGone);
        };
        removal(run(ROUTE, &route_args("delete", route, &ifname)).await)
    }

    async fn route_mtu(&mut self, destination: IpAddr) -> io::Result<Option<u32>> {
        let destination = destination.to_canonical();
        let output = capture(
            ROUTE,
            &route_get_args(&destination.to_string(), Family::of_ip(&destination)),
        )
        .await?;
        Ok(parse_route_get(&output).mtu)
    }

    async fn default_gateway(&mut self, family: Family) -> io::Result<Option<Gateway>> {
        match capture(ROUTE, &route_get_args("default", family)).await {
            Ok(output) => Ok(parse_route_get(&output).default_gateway()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn add_host_route(&mut self, host: IpAddr, gateway: &Gateway) -> io::Result<()> {
        run(ROUTE, &host_route_args("add", host, gateway)).await
    }

    async fn remove_host_route(&mut self, host: IpAddr, gateway: &Gateway) -> io::Result<Removal> {
        removal(run(ROUTE, &host_route_args("delete", host, gateway)).await)
    }
}

fn check_table(table: u32) -> io::Result<()> {
    if table == MAIN_TABLE {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("macOS has no routing table {table}: only the main table is supported"),
        ))
    }
}

/// The index of interface `ifname`; a missing one is `NotFound` ("no such interface").
fn index_of(ifname: &str) -> io::Result<u32> {
    let name = CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(no_such_interface());
    }
    Ok(index)
}

/// The name of the interface with index `index`; `None` when there is none any more.
fn live_name_of(index: u32) -> io::Result<Option<String>> {
    let mut buffer = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buffer` has the IF_NAMESIZE bytes if_indextoname may write, NUL included.
    let name = unsafe { libc::if_indextoname(index, buffer.as_mut_ptr()) };
    if name.is_null() {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENXIO) | Some(libc::ENODEV) => Ok(None),
            _ => Err(err),
        };
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buffer`.
    let name = unsafe { CStr::from_ptr(buffer.as_ptr()) };
    Ok(Some(name.to_string_lossy().into_owned()))
}

fn name_of(index: u32) -> io::Result<String> {
    live_name_of(index)?.ok_or_else(no_such_interface)
}

fn no_such_interface() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such interface")
}

/// A removal's outcome: "already gone" (`NotFound`) is not an error.
fn removal(result: io::Result<()>) -> io::Result<Removal> {
    match result {
        Ok(()) => Ok(Removal::Removed),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Removal::AlreadyGone),
        Err(err) => Err(err),
    }
}

/// Runs `program args...`; on failure the error carries the command and its output.
async fn run(program: &str, args: &[String]) -> io::Result<()> {
    capture(program, args).await.map(drop)
}

/// Runs `program args...` and returns its standard output.
async fn capture(program: &str, args: &[String]) -> io::Result<String> {
    let command_line = format!("{program} {}", args.join(" "));
    tracing::debug!("running {command_line}");
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|err| io::Error::new(err.kind(), format!("failed to run {program}: {err}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = [stderr.trim(), stdout.trim()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Err(io::Error::new(
        classify(&text),
        format!("`{command_line}` failed ({}): {text}", output.status),
    ))
}
