//! Windows: the kill switch as Windows Filtering Platform (WFP) filters in a *dynamic* session, as
//! wireguard-windows does: every object added in a dynamic session is deleted by the system when
//! the session's engine handle closes — on undo, on exit, and when the process dies — so a crash
//! can never leave the machine blocked.
//!
//! One sublayer (weight 0xFFFF, key unique to this process and apply) holds the filters. Which
//! filters, with which weights and conditions, is decided by the pure `wfp` module (tested on
//! every OS, its table names the wireguard-windows anchor of each); this file only translates each
//! `wfp::Filter` into an `FWPM_FILTER0` and adds them all in one transaction.
//!
//! The documented subset: connections are judged when they are authorised (the ALE layers), not
//! per packet; the tunnel's own addresses are not additionally guarded against other interfaces;
//! a block here cannot override another product's filter that claims the final say.
//!
//! Applying again (another tunnel, new endpoints) commits the new session before closing the old,
//! so there is no moment without a kill switch. [`FirewallChange::WfpDynamicSession`] is the
//! journal entry; undoing it closes this process's session, and is a no-op in any other process
//! (the session ended with the process that opened it).

use super::wfp::{self, Condition, Filter, Layer};
use super::{FirewallChange, KillSwitchError, KillSwitchOps, KillSwitchPlan};
use crate::sys::windows::net as winnet;
use ipnet::IpNet;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use windows_sys::core::GUID;
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::{
    FwpmEngineClose0, FwpmEngineOpen0, FwpmFilterAdd0, FwpmFreeMemory0, FwpmGetAppIdFromFileName0,
    FwpmSubLayerAdd0, FwpmTransactionAbort0, FwpmTransactionBegin0, FwpmTransactionCommit0,
    FWPM_CONDITION_ALE_APP_ID, FWPM_CONDITION_FLAGS, FWPM_CONDITION_IP_LOCAL_ADDRESS,
    FWPM_CONDITION_IP_LOCAL_INTERFACE, FWPM_CONDITION_IP_LOCAL_PORT, FWPM_CONDITION_IP_PROTOCOL,
    FWPM_CONDITION_IP_REMOTE_ADDRESS, FWPM_CONDITION_IP_REMOTE_PORT, FWPM_FILTER0,
    FWPM_FILTER_CONDITION0, FWPM_LAYER_ALE_AUTH_CONNECT_V4, FWPM_LAYER_ALE_AUTH_CONNECT_V6,
    FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4, FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6, FWPM_SESSION0,
    FWPM_SESSION_FLAG_DYNAMIC, FWPM_SUBLAYER0, FWP_ACTION_BLOCK, FWP_ACTION_PERMIT,
    FWP_BYTE_ARRAY16, FWP_BYTE_ARRAY16_TYPE, FWP_BYTE_BLOB, FWP_BYTE_BLOB_TYPE,
    FWP_CONDITION_FLAG_IS_LOOPBACK, FWP_CONDITION_VALUE0, FWP_CONDITION_VALUE0_0, FWP_MATCH_EQUAL,
    FWP_MATCH_FLAGS_ALL_SET, FWP_UINT16, FWP_UINT32, FWP_UINT64, FWP_UINT8, FWP_V4_ADDR_AND_MASK,
    FWP_V4_ADDR_MASK, FWP_V6_ADDR_AND_MASK, FWP_V6_ADDR_MASK, FWP_VALUE0, FWP_VALUE0_0,
};
use windows_sys::Win32::System::Rpc::RPC_C_AUTHN_WINNT;

/// The base of the sublayer keys; each apply XORs in the process id and a counter.
const SUBLAYER_BASE: u128 = 0x5c3b7a1e_8f2d_4c6b_9a0e_3d7f1b2c4e6a;

/// This process's kill switch session, if one is on.
static SESSION: Mutex<Option<Engine>> = Mutex::new(None);
/// Makes each apply's sublayer key unique within the process.
static APPLIES: AtomicU32 = AtomicU32::new(0);

/// The Windows implementation: a WFP dynamic session.
pub(super) struct Ops;

impl KillSwitchOps for Ops {
    fn check() -> Result<(), KillSwitchError> {
        Engine::open()
            .map(drop)
            .map_err(|err| KillSwitchError::ToolUnusable {
                command: "FwpmEngineOpen0 (Windows Filtering Platform)".into(),
                detail: format!(
                    "{err} (is the Base Filtering Engine service running, and is this process \
                     running as an Administrator?)"
                ),
            })
    }

    async fn apply(
        plan: &KillSwitchPlan,
        record: &mut impl FnMut(FirewallChange) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        // Everything that can fail without changing the system, first.
        let tunnel = winnet::luid_from_alias(&plan.ifname)
            .map_err(|err| anyhow::anyhow!("failed to find interface {}: {err}", plan.ifname))?;
        let app = AppId::of_current_exe()?;
        let change = FirewallChange::WfpDynamicSession {
            ifname: plan.ifname.clone(),
        };
        record(change.clone()).map_err(|err| {
            anyhow::anyhow!("failed to journal {change} before opening it: {err}")
        })?;
        let engine =
            Engine::open().map_err(|err| anyhow::anyhow!("failed to open a WFP session: {err}"))?;
        install(&engine, plan, tunnel, &app)
            .map_err(|err| anyhow::anyhow!("failed to install the kill switch filters: {err}"))?;
        // The new session is in force; closing the old one (by dropping it) removes its filters.
        let previous = lock().replace(engine);
        drop(previous);
        tracing::info!(
            "kill switch on: WFP filters block traffic outside {}{}",
            plan.ifname,
            if plan.allow_lan {
                " except to the LAN"
            } else {
                ""
            }
        );
        Ok(())
    }

    async fn undo(change: &FirewallChange) -> anyhow::Result<()> {
        match change {
            FirewallChange::WfpDynamicSession { .. } => {
                match lock().take() {
                    Some(engine) => {
                        drop(engine);
                        tracing::info!("kill switch off: {change} closed");
                    }
                    None => tracing::debug!(
                        "{change}: not open in this process (it ended with the process that \
                         opened it)"
                    ),
                }
                Ok(())
            }
            other => Err(anyhow::anyhow!(
                "cannot remove {other} on Windows: another OS's firewall made it"
            )),
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<Engine>> {
    // A panic while holding the lock cannot leave the Option half-written.
    SESSION
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A WFP error code as an `io::Error` (FWP_E_* codes are HRESULT-style and shown in hex).
fn check(code: u32) -> io::Result<()> {
    match code {
        0 => Ok(()),
        code if code & 0x8000_0000 != 0 => Err(io::Error::other(format!(
            "Windows Filtering Platform error {code:#010x}"
        ))),
        // Win32 error codes fit in an i32.
        code => Err(io::Error::from_raw_os_error(code as i32)),
    }
}

fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

/// An open WFP engine handle in a dynamic session; closing it removes everything added in it.
struct Engine(HANDLE);

// SAFETY: a WFP engine handle is not tied to the thread that opened it; it is only used by one
// thread at a time (behind the SESSION mutex, or owned by the applying task).
unsafe impl Send for Engine {}

impl Engine {
    fn open() -> io::Result<Engine> {
        let name = wide("Warren kill switch");
        let mut session = FWPM_SESSION0::default();
        session.displayData.name = name.as_ptr().cast_mut();
        session.flags = FWPM_SESSION_FLAG_DYNAMIC;
        let mut handle: HANDLE = std::ptr::null_mut();
        // SAFETY: the server name and auth identity may be null (local engine, current user);
        // `session` and its display name outlive the call, which does not write through them;
        // `handle` is a valid out-pointer.
        check(unsafe {
            FwpmEngineOpen0(
                std::ptr::null(),
                RPC_C_AUTHN_WINNT,
                std::ptr::null(),
                &session,
                &mut handle,
            )
        })?;
        Ok(Engine(handle))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the handle came from FwpmEngineOpen0 and is closed exactly once, here.
        let code = unsafe { FwpmEngineClose0(self.0) };
        if let Err(err) = check(code) {
            tracing::warn!("failed to close the WFP session: {err}");
        }
    }
}

/// This executable's WFP application id, freed on drop.
struct AppId(*mut FWP_BYTE_BLOB);

impl AppId {
    fn of_current_exe() -> anyhow::Result<AppId> {
        let exe = std::env::current_exe()
            .map_err(|err| anyhow::anyhow!("failed to find the helper's own path: {err}"))?;
        let path = wide(&exe.to_string_lossy());
        let mut blob: *mut FWP_BYTE_BLOB = std::ptr::null_mut();
        // SAFETY: `path` is NUL-terminated UTF-16 that outlives the call; `blob` is a valid
        // out-pointer, freed with FwpmFreeMemory0 on drop.
        check(unsafe { FwpmGetAppIdFromFileName0(path.as_ptr(), &mut blob) }).map_err(|err| {
            anyhow::anyhow!(
                "failed to get the WFP application id of {}: {err}",
                exe.display()
            )
        })?;
        Ok(AppId(blob))
    }
}

impl Drop for AppId {
    fn drop(&mut self) {
        let mut pointer = self.0.cast::<std::ffi::c_void>();
        // SAFETY: the blob came from FwpmGetAppIdFromFileName0 and is freed exactly once, here.
        unsafe { FwpmFreeMemory0(&mut pointer) };
    }
}

/// The values conditions point at, kept until the filter is added. Boxed: a condition holds a
/// pointer to its value, which must not move when the vector grows.
#[derive(Default)]
#[allow(clippy::vec_box)]
struct Storage {
    u64s: Vec<Box<u64>>,
    arrays: Vec<Box<FWP_BYTE_ARRAY16>>,
    v4: Vec<Box<FWP_V4_ADDR_AND_MASK>>,
    v6: Vec<Box<FWP_V6_ADDR_AND_MASK>>,
}

/// Pushes `value` into `list` and returns a pointer to it that stays valid while `list`'s boxes
/// live (the box's contents never move when the vector grows).
#[allow(clippy::vec_box)]
fn keep<T>(list: &mut Vec<Box<T>>, value: T) -> *mut T {
    list.push(Box::new(value));
    list.last_mut()
        .map_or(std::ptr::null_mut(), |b| std::ptr::from_mut(b.as_mut()))
}

/// What the translation needs besides the filter: the tunnel's LUID and this program's app id.
struct Context<'a> {
    tunnel: u64,
    app: &'a AppId,
}

/// `condition` as an `FWPM_FILTER_CONDITION0`, its pointed-at values kept in `storage`.
fn condition(
    condition: Condition,
    context: &Context<'_>,
    storage: &mut Storage,
) -> FWPM_FILTER_CONDITION0 {
    let (field, match_type, value) = match condition {
        Condition::Loopback => (
            FWPM_CONDITION_FLAGS,
            FWP_MATCH_FLAGS_ALL_SET,
            value(
                FWP_UINT32,
                FWP_CONDITION_VALUE0_0 {
                    uint32: FWP_CONDITION_FLAG_IS_LOOPBACK,
                },
            ),
        ),
        Condition::TunnelInterface => {
            let pointer = keep(&mut storage.u64s, context.tunnel);
            (
                FWPM_CONDITION_IP_LOCAL_INTERFACE,
                FWP_MATCH_EQUAL,
                value(FWP_UINT64, FWP_CONDITION_VALUE0_0 { uint64: pointer }),
            )
        }
        Condition::ThisProgram => (
            FWPM_CONDITION_ALE_APP_ID,
            FWP_MATCH_EQUAL,
            value(
                FWP_BYTE_BLOB_TYPE,
                FWP_CONDITION_VALUE0_0 {
                    byteBlob: context.app.0,
                },
            ),
        ),
        Condition::Protocol(protocol) => (
            FWPM_CONDITION_IP_PROTOCOL,
            FWP_MATCH_EQUAL,
            value(FWP_UINT8, FWP_CONDITION_VALUE0_0 { uint8: protocol }),
        ),
        Condition::LocalPort(port) => (
            FWPM_CONDITION_IP_LOCAL_PORT,
            FWP_MATCH_EQUAL,
            value(FWP_UINT16, FWP_CONDITION_VALUE0_0 { uint16: port }),
        ),
        Condition::RemotePort(port) => (
            FWPM_CONDITION_IP_REMOTE_PORT,
            FWP_MATCH_EQUAL,
            value(FWP_UINT16, FWP_CONDITION_VALUE0_0 { uint16: port }),
        ),
        // fwpmu.h: `#define FWPM_CONDITION_ICMP_TYPE FWPM_CONDITION_IP_LOCAL_PORT`.
        Condition::IcmpType(kind) => (
            FWPM_CONDITION_IP_LOCAL_PORT,
            FWP_MATCH_EQUAL,
            value(FWP_UINT16, FWP_CONDITION_VALUE0_0 { uint16: kind }),
        ),
        // fwpmu.h: `#define FWPM_CONDITION_ICMP_CODE FWPM_CONDITION_IP_REMOTE_PORT`.
        Condition::IcmpCode(code) => (
            FWPM_CONDITION_IP_REMOTE_PORT,
            FWP_MATCH_EQUAL,
            value(FWP_UINT16, FWP_CONDITION_VALUE0_0 { uint16: code }),
        ),
        Condition::RemoteAddress(IpAddr::V4(ip)) => (
            FWPM_CONDITION_IP_REMOTE_ADDRESS,
            FWP_MATCH_EQUAL,
            // The ALE layers take IPv4 addresses in host byte order.
            value(FWP_UINT32, FWP_CONDITION_VALUE0_0 { uint32: ip.into() }),
        ),
        Condition::RemoteAddress(IpAddr::V6(ip)) => {
            let pointer = keep(
                &mut storage.arrays,
                FWP_BYTE_ARRAY16 {
                    byteArray16: ip.octets(),
                },
            );
            (
                FWPM_CONDITION_IP_REMOTE_ADDRESS,
                FWP_MATCH_EQUAL,
                value(
                    FWP_BYTE_ARRAY16_TYPE,
                    FWP_CONDITION_VALUE0_0 {
                        byteArray16: pointer,
                    },
                ),
            )
        }
        Condition::RemoteNet(net) => (
            FWPM_CONDITION_IP_REMOTE_ADDRESS,
            FWP_MATCH_EQUAL,
            net_value(net, storage),
        ),
        Condition::LocalNet(net) => (
            FWPM_CONDITION_IP_LOCAL_ADDRESS,
            FWP_MATCH_EQUAL,
            net_value(net, storage),
        ),
    };
    FWPM_FILTER_CONDITION0 {
        fieldKey: field,
        matchType: match_type,
        conditionValue: value,
    }
}

/// A prefix as an address-and-mask condition value.
fn net_value(net: IpNet, storage: &mut Storage) -> FWP_CONDITION_VALUE0 {
    match net {
        IpNet::V4(net) => {
            let pointer = keep(
                &mut storage.v4,
                FWP_V4_ADDR_AND_MASK {
                    addr: net.network().into(),
                    mask: net.netmask().into(),
                },
            );
            value(
                FWP_V4_ADDR_MASK,
                FWP_CONDITION_VALUE0_0 {
                    v4AddrMask: pointer,
                },
            )
        }
        IpNet::V6(net) => {
            let pointer = keep(
                &mut storage.v6,
                FWP_V6_ADDR_AND_MASK {
                    addr: net.network().octets(),
                    prefixLength: net.prefix_len(),
                },
            );
            value(
                FWP_V6_ADDR_MASK,
                FWP_CONDITION_VALUE0_0 {
                    v6AddrMask: pointer,
                },
            )
        }
    }
}

fn value(kind: i32, inner: FWP_CONDITION_VALUE0_0) -> FWP_CONDITION_VALUE0 {
    FWP_CONDITION_VALUE0 {
        r#type: kind,
        Anonymous: inner,
    }
}

fn layer_key(layer: Layer) -> GUID {
    match layer {
        Layer::ConnectV4 => FWPM_LAYER_ALE_AUTH_CONNECT_V4,
        Layer::ConnectV6 => FWPM_LAYER_ALE_AUTH_CONNECT_V6,
        Layer::AcceptV4 => FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
        Layer::AcceptV6 => FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6,
    }
}

/// Adds one filter in `sublayer`.
fn add_filter(
    engine: &Engine,
    sublayer: GUID,
    filter: &Filter,
    context: &Context<'_>,
) -> io::Result<()> {
    let name = wide(&format!("Warren kill switch: {}", filter.what));
    let mut storage = Storage::default();
    let mut conditions: Vec<FWPM_FILTER_CONDITION0> = filter
        .conditions
        .iter()
        .map(|&c| condition(c, context, &mut storage))
        .collect();
    let mut raw = FWPM_FILTER0::default();
    raw.displayData.name = name.as_ptr().cast_mut();
    raw.layerKey = layer_key(filter.layer);
    raw.subLayerKey = sublayer;
    raw.weight = FWP_VALUE0 {
        r#type: FWP_UINT8,
        Anonymous: FWP_VALUE0_0 {
            uint8: filter.weight,
        },
    };
    raw.numFilterConditions = u32::try_from(conditions.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many conditions"))?;
    raw.filterCondition = if conditions.is_empty() {
        std::ptr::null_mut()
    } else {
        conditions.as_mut_ptr()
    };
    raw.action.r#type = if filter.permit {
        FWP_ACTION_PERMIT
    } else {
        FWP_ACTION_BLOCK
    };
    let mut id = 0u64;
    // SAFETY: `raw`, its name, its conditions and everything they point at (`storage`, the app
    // id blob owned by the caller) outlive the call, which copies them; no security descriptor.
    check(unsafe { FwpmFilterAdd0(engine.0, &raw, std::ptr::null_mut(), &mut id) })
        .map_err(|err| io::Error::new(err.kind(), format!("{} ({err})", filter.what)))
}

/// Adds the sublayer and every filter in one transaction.
fn install(engine: &Engine, plan: &KillSwitchPlan, tunnel: u64, app: &AppId) -> io::Result<()> {
    // SAFETY: the engine handle is open; no flags.
    check(unsafe { FwpmTransactionBegin0(engine.0, 0) })?;
    match add_all(engine, plan, &Context { tunnel, app }) {
        // SAFETY: a transaction is open on this engine.
        Ok(()) => check(unsafe { FwpmTransactionCommit0(engine.0) }),
        Err(err) => {
            // SAFETY: a transaction is open on this engine.
            let _ = check(unsafe { FwpmTransactionAbort0(engine.0) });
            Err(err)
        }
    }
}

fn add_all(engine: &Engine, plan: &KillSwitchPlan, context: &Context<'_>) -> io::Result<()> {
    let apply = APPLIES.fetch_add(1, Ordering::Relaxed);
    let sublayer_key =
        GUID::from_u128(SUBLAYER_BASE ^ (u128::from(std::process::id()) << 32 | u128::from(apply)));
    let name = wide("Warren kill switch");
    let mut sublayer = FWPM_SUBLAYER0 {
        subLayerKey: sublayer_key,
        weight: u16::MAX,
        ..Default::default()
    };
    sublayer.displayData.name = name.as_ptr().cast_mut();
    // SAFETY: `sublayer` and its name outlive the call, which copies them; no security descriptor.
    check(unsafe { FwpmSubLayerAdd0(engine.0, &sublayer, std::ptr::null_mut()) })?;
    for filter in wfp::filters(plan) {
        add_filter(engine, sublayer_key, &filter, context)?;
    }
    Ok(())
}
