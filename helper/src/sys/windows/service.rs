//! The helper as a Windows service: `warren-helper daemon --service` under the Service Control
//! Manager (SCM), and the install/uninstall steps the MSI runs.
//!
//! It owns the service's name and configuration, the bridge from the SCM's control requests to
//! the daemon's shutdown future, and the status the SCM sees. It does not own the daemon: that is
//! [`crate::daemon::run`], the same function `warren-helper daemon` runs in a console.
//!
//! Running (`daemon --service`, the command line the SCM starts):
//! 1. [`run`] parks the daemon's options and hands the thread to the SCM's dispatcher
//!    (`StartServiceCtrlDispatcher`), which calls back `service_main` on a thread of its own.
//! 2. `service_main` registers the control handler, reports `StartPending`, builds the tokio
//!    runtime, reports `Running` (accepting Stop and Shutdown), and runs the daemon.
//! 3. Stop (`sc.exe stop`, the Services console, the MSI) or Shutdown (the machine going down)
//!    completes the daemon's shutdown future; while the daemon tears its tunnels down and undoes
//!    its journal, the SCM is told `StopPending` with a fresh checkpoint every
//!    [`STOP_CHECKPOINT_INTERVAL`], so it does not declare the service hung.
//! 4. When the daemon returns, the SCM is told `Stopped`, with exit code 0, or the
//!    service-specific code [`EXIT_DAEMON_FAILED`] when it failed — which (with
//!    `FailureActionsOnNonCrashFailures`, set by [`install`]) makes the SCM restart it, as it does
//!    after a crash. A restarted daemon undoes what the previous one left, from its journals.
//!
//! Installing ([`install`], run by the MSI as `warren-helper.exe service install`): creates the
//! local group [`USERS_GROUP`] (whose members may use the helper's pipe) if it is missing, then
//! creates the service — or updates it, so an upgrade can run it again — as LocalSystem,
//! automatic start, depending on the TCP/IP stack and NSI, restarting on failure, with an
//! unrestricted service SID (so firewall rules can name the service). [`uninstall`] stops the
//! service (waiting for its teardown) and deletes it; a service that is not there is success.
//! Both need an administrator.

use anyhow::{anyhow, bail, Context as _};
use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::os::windows::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use windows_service::service::{
    Service, ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceDependency, ServiceErrorControl, ServiceExitCode, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceSidType, ServiceStartType, ServiceState,
    ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};
use windows_sys::Win32::Foundation::{
    ERROR_ALIAS_EXISTS, ERROR_FAILED_SERVICE_CONTROLLER_CONNECT, ERROR_INVALID_LEVEL,
    ERROR_SERVICE_DOES_NOT_EXIST,
};
use windows_sys::Win32::NetworkManagement::NetManagement::{
    NERR_GroupExists, NERR_Success, NetLocalGroupAdd, LOCALGROUP_INFO_1,
};

/// The service's name (`sc.exe query warren-helper`); the IPC client's hint names it too.
pub const SERVICE_NAME: &str = "warren-helper";

/// What the Services console shows.
pub const DISPLAY_NAME: &str = "Warren VPN helper";

/// The Services console's description.
const DESCRIPTION: &str = "Runs Warren's WireGuard tunnels and changes routes, DNS and the \
                           firewall for them. Stopping it disconnects every tunnel.";

/// The local group whose members may use the helper's pipe (besides SYSTEM and Administrators).
pub const USERS_GROUP: &str = "Warren Users";

/// The group's comment in "Local Users and Groups".
const USERS_GROUP_COMMENT: &str = "Members may connect and disconnect Warren VPN tunnels.";

/// The arguments the SCM starts the executable with.
const SERVICE_ARGUMENTS: [&str; 2] = ["daemon", "--service"];

/// Services that must run first: the TCP/IP driver and the Network Store Interface (as
/// wireguard-windows' tunnel services declare).
const DEPENDENCIES: [&str; 2] = ["Nsi", "TcpIp"];

/// The service type: its own process.
const SERVICE_TYPE: ServiceType = ServiceType::OWN_PROCESS;

/// How long the SCM should wait for the start (runtime creation) before calling it hung.
const START_WAIT_HINT: Duration = Duration::from_secs(10);

/// How long the SCM should wait between two `StopPending` checkpoints while the daemon tears
/// down, and how often a new checkpoint is reported.
const STOP_WAIT_HINT: Duration = Duration::from_secs(30);
const STOP_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// The service-specific exit code reported when the daemon returned an error (the log says which).
pub const EXIT_DAEMON_FAILED: u32 = 1;

/// Failure actions: restart after these delays (first, second, and every later failure), and
/// forget earlier failures after a day without one.
const RESTART_DELAYS: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(60),
];
const FAILURE_RESET_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// How long [`uninstall`] waits for the service to stop before deleting it anyway.
const UNINSTALL_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the daemon is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopRequest {
    /// `sc.exe stop`, the Services console, the MSI.
    Stop,
    /// The machine is shutting down.
    Shutdown,
}

/// The daemon's options, parked by [`run`] for `service_main` (the dispatcher calls it with no
/// way to pass anything but the SCM's arguments).
static PENDING_OPTIONS: Mutex<Option<crate::daemon::Options>> = Mutex::new(None);

/// What `service_main` returned, for [`run`] to return once the dispatcher does.
static OUTCOME: Mutex<Option<anyhow::Result<()>>> = Mutex::new(None);

/// Runs the daemon as the `warren-helper` service until the SCM stops it. Returns the daemon's
/// outcome once the service has reported `Stopped`.
///
/// Fails at once, changing nothing, when the process was not started by the SCM (someone typed
/// `warren-helper daemon --service` in a console).
pub fn run(options: crate::daemon::Options) -> anyhow::Result<()> {
    *PENDING_OPTIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(options);
    if let Err(err) = service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
        if winapi_code(&err) == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
            bail!(
                "`daemon --service` is for the Service Control Manager, which did not start this \
                 process: start the service with `sc.exe start {SERVICE_NAME}`, or run \
                 `warren-helper daemon` (without --service) in a console"
            );
        }
        return Err(anyhow!(err).context("failed to connect to the Service Control Manager"));
    }
    OUTCOME
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_else(|| Err(anyhow!("the service ended without running the daemon")))
}

define_windows_service!(ffi_service_main, service_main);

/// The SCM's entry point (on the dispatcher's thread): runs the service and keeps its outcome.
fn service_main(_arguments: Vec<OsString>) {
    let outcome = run_service();
    if let Err(err) = &outcome {
        tracing::error!("the {SERVICE_NAME} service failed: {err:#}");
    }
    *OUTCOME.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
}

fn run_service() -> anyhow::Result<()> {
    let options = PENDING_OPTIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .context("the service was started twice in one process")?;

    let (stop_tx, stop_rx) = watch::channel(None::<StopRequest>);
    let handler = move |control| match control {
        ServiceControl::Stop => {
            stop_tx.send_replace(Some(StopRequest::Stop));
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Shutdown => {
            stop_tx.send_replace(Some(StopRequest::Shutdown));
            ServiceControlHandlerResult::NoError
        }
        // The SCM asks for the current status; it is reported on every change already.
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = service_control_handler::register(SERVICE_NAME, handler)
        .context("failed to register the service control handler")?;
    let status = StatusReporter { handle };

    status.report(ServiceState::StartPending, 1, START_WAIT_HINT, None)?;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")
    {
        Ok(runtime) => runtime,
        Err(err) => {
            status.stopped(false);
            return Err(err);
        }
    };
    if let Err(err) = status.report(ServiceState::Running, 0, Duration::ZERO, None) {
        status.stopped(false);
        return Err(err);
    }

    let shutdown = {
        let mut stop_rx = stop_rx.clone();
        async move {
            match stop_rx
                .wait_for(Option::is_some)
                .await
                .map(|request| *request)
            {
                Ok(Some(StopRequest::Stop)) => tracing::info!("service stop requested"),
                Ok(Some(StopRequest::Shutdown)) => tracing::info!("system shutting down"),
                // The handler (and its sender) never goes away while the process lives; stopping
                // is the safe reading of anything else.
                _ => tracing::warn!("service control channel closed: stopping"),
            }
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = crate::daemon::run(options, shutdown) => outcome,
            never = report_stop_progress(status, stop_rx) => match never {},
        }
    });
    // Tasks the daemon left behind must not hold the process up once the SCM is told it stopped.
    runtime.shutdown_timeout(Duration::from_secs(1));
    status.stopped(outcome.is_ok());
    outcome
}

/// Once a stop is requested, tells the SCM the teardown is progressing, every
/// [`STOP_CHECKPOINT_INTERVAL`], for as long as it takes (the caller drops this when the daemon
/// returns).
async fn report_stop_progress(
    status: StatusReporter,
    mut stop_rx: watch::Receiver<Option<StopRequest>>,
) -> Infallible {
    // An error means the sender is gone; report progress anyway, the daemon is stopping too.
    let _ = stop_rx.wait_for(Option::is_some).await;
    let mut ticks = tokio::time::interval(STOP_CHECKPOINT_INTERVAL);
    let mut checkpoint: u32 = 0;
    loop {
        ticks.tick().await;
        checkpoint = checkpoint.saturating_add(1);
        if let Err(err) = status.report(ServiceState::StopPending, checkpoint, STOP_WAIT_HINT, None)
        {
            tracing::warn!("{err:#}");
        }
    }
}

/// Reports the service's state to the SCM.
#[derive(Clone, Copy)]
struct StatusReporter {
    handle: ServiceStatusHandle,
}

impl StatusReporter {
    fn report(
        &self,
        state: ServiceState,
        checkpoint: u32,
        wait_hint: Duration,
        exit_code: Option<ServiceExitCode>,
    ) -> anyhow::Result<()> {
        self.handle
            .set_service_status(status(state, checkpoint, wait_hint, exit_code))
            .with_context(|| format!("failed to report the service state {state:?} to the SCM"))
    }

    /// The last report; a failure to send it can only be logged.
    fn stopped(&self, success: bool) {
        let exit_code = if success {
            ServiceExitCode::NO_ERROR
        } else {
            ServiceExitCode::ServiceSpecific(EXIT_DAEMON_FAILED)
        };
        if let Err(err) = self.report(ServiceState::Stopped, 0, Duration::ZERO, Some(exit_code)) {
            tracing::warn!("{err:#}");
        }
    }
}

/// The status the SCM gets for `state`: which controls are accepted then, and the exit code.
fn status(
    state: ServiceState,
    checkpoint: u32,
    wait_hint: Duration,
    exit_code: Option<ServiceExitCode>,
) -> ServiceStatus {
    let controls_accepted = match state {
        ServiceState::Running => ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        _ => ServiceControlAccept::empty(),
    };
    ServiceStatus {
        service_type: SERVICE_TYPE,
        current_state: state,
        controls_accepted,
        exit_code: exit_code.unwrap_or(ServiceExitCode::NO_ERROR),
        checkpoint,
        wait_hint,
        process_id: None,
    }
}

/// The service's configuration, for `executable`.
fn service_info(executable: &Path) -> ServiceInfo {
    ServiceInfo {
        name: OsString::from(SERVICE_NAME),
        display_name: OsString::from(DISPLAY_NAME),
        service_type: SERVICE_TYPE,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: executable.to_path_buf(),
        launch_arguments: SERVICE_ARGUMENTS.iter().map(OsString::from).collect(),
        dependencies: DEPENDENCIES
            .iter()
            .map(|name| ServiceDependency::Service(OsString::from(name)))
            .collect(),
        // LocalSystem: the helper changes routes, DNS and the firewall.
        account_name: None,
        account_password: None,
    }
}

/// Creates the group [`USERS_GROUP`] if needed, then creates the service for `executable` (the
/// installed `warren-helper.exe`) or updates an existing one, and sets its description, failure
/// actions and SID type. Does not start it (the MSI does, or `sc.exe start warren-helper`).
pub fn install(executable: &Path) -> anyhow::Result<()> {
    ensure_users_group()?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .context("failed to open the Service Control Manager (run as an administrator)")?;
    let info = service_info(executable);
    let access = ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_CONFIG;
    let service = match manager.open_service(SERVICE_NAME, access) {
        Ok(service) => {
            service
                .change_config(&info)
                .with_context(|| format!("failed to update the service {SERVICE_NAME}"))?;
            tracing::info!("service {SERVICE_NAME} updated: {}", executable.display());
            service
        }
        Err(err) if winapi_code(&err) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
            let service = manager
                .create_service(&info, access)
                .with_context(|| format!("failed to create the service {SERVICE_NAME}"))?;
            tracing::info!("service {SERVICE_NAME} created: {}", executable.display());
            service
        }
        Err(err) => {
            return Err(anyhow!(err).context(format!("failed to open the service {SERVICE_NAME}")))
        }
    };
    configure(&service)
}

/// The settings [`ServiceInfo`] does not carry.
fn configure(service: &Service) -> anyhow::Result<()> {
    service
        .set_description(DESCRIPTION)
        .context("failed to set the service's description")?;
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(FAILURE_RESET_PERIOD),
            reboot_msg: None,
            command: None,
            actions: Some(
                RESTART_DELAYS
                    .iter()
                    .map(|&delay| ServiceAction {
                        action_type: ServiceActionType::Restart,
                        delay,
                    })
                    .collect(),
            ),
        })
        .context("failed to set the service's failure actions")?;
    // Also restart after the daemon *reported* a failure (stopped with a non-zero exit code).
    unless_unsupported(
        service.set_failure_actions_on_non_crash_failures(true),
        "failure actions on non-crash failures",
    )
    .context("failed to apply failure actions to non-crash failures")?;
    unless_unsupported(
        service.set_config_service_sid_info(ServiceSidType::Unrestricted),
        "an unrestricted service SID",
    )
    .context("failed to give the service its own SID")?;
    Ok(())
}

/// `result`, except that a configuration level the SCM does not know (`ERROR_INVALID_LEVEL`) is
/// a warning: every Windows since Vista knows the two levels this is used for, Wine 8's SCM
/// does not (its MSI installs are tested: README, Windows under Wine), and both are hardening,
/// not something the service needs to run.
fn unless_unsupported(
    result: windows_service::Result<()>,
    what: &str,
) -> windows_service::Result<()> {
    match result {
        Err(err) if winapi_code(&err) == Some(ERROR_INVALID_LEVEL) => {
            tracing::warn!(
                "the Service Control Manager does not support {what} (ERROR_INVALID_LEVEL): \
                 the service is installed without it"
            );
            Ok(())
        }
        other => other,
    }
}

/// Stops the service (waiting up to [`UNINSTALL_STOP_TIMEOUT`] for the daemon's teardown) and
/// deletes it. A service that does not exist is success. The group [`USERS_GROUP`] is kept
/// (it is the administrator's list of who may use Warren; the MSI removes it on a full uninstall
/// only if asked, with `net localgroup "Warren Users" /delete`).
pub fn uninstall() -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .context("failed to open the Service Control Manager (run as an administrator)")?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let service = match manager.open_service(SERVICE_NAME, access) {
        Ok(service) => service,
        Err(err) if winapi_code(&err) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
            tracing::info!("service {SERVICE_NAME} is not installed: nothing to remove");
            return Ok(());
        }
        Err(err) => {
            return Err(anyhow!(err).context(format!("failed to open the service {SERVICE_NAME}")))
        }
    };
    let state = service
        .query_status()
        .with_context(|| format!("failed to query the service {SERVICE_NAME}"))?
        .current_state;
    if state != ServiceState::Stopped {
        if state != ServiceState::StopPending {
            service
                .stop()
                .with_context(|| format!("failed to stop the service {SERVICE_NAME}"))?;
        }
        wait_stopped(&service)?;
    }
    service
        .delete()
        .with_context(|| format!("failed to delete the service {SERVICE_NAME}"))?;
    tracing::info!("service {SERVICE_NAME} removed");
    Ok(())
}

fn wait_stopped(service: &Service) -> anyhow::Result<()> {
    let deadline = Instant::now() + UNINSTALL_STOP_TIMEOUT;
    loop {
        let state = service
            .query_status()
            .with_context(|| format!("failed to query the service {SERVICE_NAME}"))?
            .current_state;
        if state == ServiceState::Stopped {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the service {SERVICE_NAME} did not stop within {} s (state {state:?}); its \
                 tunnels may still be up",
                UNINSTALL_STOP_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Creates the local group [`USERS_GROUP`]; one that exists already is success.
pub fn ensure_users_group() -> anyhow::Result<()> {
    let mut name = wide(OsStr::new(USERS_GROUP));
    let mut comment = wide(OsStr::new(USERS_GROUP_COMMENT));
    let info = LOCALGROUP_INFO_1 {
        lgrpi1_name: name.as_mut_ptr(),
        lgrpi1_comment: comment.as_mut_ptr(),
    };
    let mut bad_parameter = 0u32;
    // SAFETY: `info` is a valid LOCALGROUP_INFO_1 for level 1; its two strings are
    // NUL-terminated UTF-16 buffers that outlive the call (`name`, `comment`); a null server name
    // means this computer; `bad_parameter` is a valid place for the index of a bad field.
    let status = unsafe {
        NetLocalGroupAdd(
            std::ptr::null(),
            1,
            std::ptr::from_ref(&info).cast::<u8>(),
            &mut bad_parameter,
        )
    };
    if status == NERR_Success {
        tracing::info!("local group '{USERS_GROUP}' created");
        Ok(())
    } else if status == ERROR_ALIAS_EXISTS || status == NERR_GroupExists {
        tracing::debug!("local group '{USERS_GROUP}' exists already");
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(status as i32))
            .with_context(|| format!("failed to create the local group '{USERS_GROUP}'"))
    }
}

/// `s` as a NUL-terminated UTF-16 string.
fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// The Win32 error code inside a windows-service error, if it carries one.
fn winapi_code(err: &windows_service::Error) -> Option<u32> {
    match err {
        windows_service::Error::Winapi(io) => io.raw_os_error().map(|code| code as u32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_running_service_accepts_stop_and_shutdown() {
        let running = status(ServiceState::Running, 0, Duration::ZERO, None);
        assert_eq!(
            running.controls_accepted,
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        );
        for state in [
            ServiceState::StartPending,
            ServiceState::StopPending,
            ServiceState::Stopped,
        ] {
            assert!(status(state, 1, STOP_WAIT_HINT, None)
                .controls_accepted
                .is_empty());
        }
    }

    #[test]
    fn a_failed_daemon_stops_with_the_service_specific_code() {
        let stopped = status(
            ServiceState::Stopped,
            0,
            Duration::ZERO,
            Some(ServiceExitCode::ServiceSpecific(EXIT_DAEMON_FAILED)),
        );
        assert_eq!(
            stopped.exit_code,
            ServiceExitCode::ServiceSpecific(EXIT_DAEMON_FAILED)
        );
        assert_eq!(
            status(ServiceState::Stopped, 0, Duration::ZERO, None).exit_code,
            ServiceExitCode::NO_ERROR
        );
    }

    #[test]
    fn the_scm_starts_the_daemon_in_service_mode_after_the_network_stack() {
        let info = service_info(Path::new(r"C:\Program Files\Warren\warren-helper.exe"));
        assert_eq!(info.name, SERVICE_NAME);
        assert_eq!(info.launch_arguments, ["daemon", "--service"]);
        assert_eq!(info.start_type, ServiceStartType::AutoStart);
        assert_eq!(info.account_name, None, "LocalSystem");
        assert_eq!(
            info.dependencies,
            [
                ServiceDependency::Service("Nsi".into()),
                ServiceDependency::Service("TcpIp".into())
            ]
        );
    }

    #[test]
    fn wide_strings_end_with_nul() {
        assert_eq!(
            wide(OsStr::new("ab")),
            [u16::from(b'a'), u16::from(b'b'), 0]
        );
    }
}
