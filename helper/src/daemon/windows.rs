//! The daemon's named pipe on Windows: `\\.\pipe\warren-helper` (or `--socket`).
//!
//! Who may connect is the pipe's DACL: SYSTEM and the built-in Administrators (full access), and
//! the local group `Warren Users` (read/write; created by `warren-helper service install`) when
//! it exists; protected from inheritance; remote (SMB) clients are refused. The first instance is
//! created with `FILE_FLAG_FIRST_PIPE_INSTANCE`, so a second daemon cannot serve (or squat) the
//! same name.
//!
//! Each connection's caller is an administrator (may manage system tunnels) when its token — read
//! by impersonating the pipe client for the duration of one `CheckTokenMembership` — holds the
//! Administrators group enabled (an elevated process); `Warren Users` members are not.

use super::manager::Caller;
use super::Incoming;
use crate::sys::windows::pipe::SecurityDescriptor;
use anyhow::Context;
use std::io;
use std::path::Path;
use tokio::net::windows::named_pipe::NamedPipeServer;
use windows_sys::Win32::Foundation::LocalFree;

/// Owner SYSTEM; a protected DACL granting full access to SYSTEM and built-in Administrators;
/// the users group's entry is appended when it exists.
const PIPE_SDDL: &str = "O:SYD:P(A;;GA;;;SY)(A;;GA;;;BA)";

/// The local group whose members may use the helper (created by the service installer).
const USERS_GROUP: &str = "Warren Users";

/// The listening pipe: always one instance waiting for the next client.
pub(super) struct Listener {
    listening: NamedPipeServer,
    security: SecurityDescriptor,
    path: String,
}

impl Listener {
    /// Creates the pipe at `path`. `group` is not used on Windows (see the module docs).
    pub(super) fn bind(path: &Path, _group: &str) -> anyhow::Result<Self> {
        let path = path.to_string_lossy().into_owned();
        let sddl = match group_sid(USERS_GROUP) {
            Ok(sid) => format!("{PIPE_SDDL}(A;;GRGW;;;{sid})"),
            Err(e) => {
                tracing::warn!(
                    "local group '{USERS_GROUP}' not found ({e}): only Administrators can use \
                     the helper (`warren-helper service install` creates the group)"
                );
                PIPE_SDDL.to_owned()
            }
        };
        let security = SecurityDescriptor::from_sddl(&sddl)
            .context("failed to build the security descriptor of the helper's pipe")?;
        let listening = security.create_pipe(&path, true).with_context(|| {
            format!(
                "failed to create the pipe {path} (is another warren-helper daemon running? is \
                 this process running as an Administrator?)"
            )
        })?;
        tracing::info!("listening on {path} ({sddl})");
        Ok(Listener {
            listening,
            security,
            path,
        })
    }

    /// The next connection; the DACL already admitted it.
    pub(super) async fn accept(&mut self) -> io::Result<Incoming<NamedPipeServer>> {
        self.listening.connect().await?;
        let next = self.security.create_pipe(&self.path, false)?;
        let stream = std::mem::replace(&mut self.listening, next);
        let admin = match client_is_admin(&stream) {
            Ok(admin) => admin,
            Err(e) => {
                tracing::warn!("failed to check the pipe client's groups: {e}");
                false
            }
        };
        Ok(Incoming {
            stream,
            peer: format!(
                "pipe client ({})",
                if admin { "Administrators" } else { USERS_GROUP }
            ),
            admission: Ok(Caller { uid: None, admin }),
        })
    }
}

/// Whether the connected client's token holds the Administrators group, enabled.
fn client_is_admin(pipe: &NamedPipeServer) -> io::Result<bool> {
    use std::os::windows::io::AsRawHandle as _;
    use windows_sys::Win32::Security::{
        CheckTokenMembership, CreateWellKnownSid, RevertToSelf, WinBuiltinAdministratorsSid,
        SECURITY_MAX_SID_SIZE,
    };
    use windows_sys::Win32::System::Pipes::ImpersonateNamedPipeClient;
    let mut sid = [0u8; SECURITY_MAX_SID_SIZE as usize];
    let mut size = SECURITY_MAX_SID_SIZE;
    // SAFETY: `sid` has room for `size` bytes; the domain SID may be null for this well-known SID.
    let ok = unsafe {
        CreateWellKnownSid(
            WinBuiltinAdministratorsSid,
            std::ptr::null_mut(),
            sid.as_mut_ptr().cast(),
            &mut size,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the handle is the connected pipe's, valid while `pipe` lives.
    if unsafe { ImpersonateNamedPipeClient(pipe.as_raw_handle()) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut member = 0;
    // SAFETY: a null token means the calling thread's impersonation token, set just above on this
    // thread with no await in between; `sid` is a valid SID and `member` a valid out-pointer.
    let checked =
        unsafe { CheckTokenMembership(std::ptr::null_mut(), sid.as_mut_ptr().cast(), &mut member) };
    let error = io::Error::last_os_error();
    // SAFETY: ends the impersonation started above, on the same thread.
    if unsafe { RevertToSelf() } == 0 {
        // A thread that cannot stop impersonating must not go on serving: this is not recoverable.
        std::process::abort();
    }
    if checked == 0 {
        return Err(error);
    }
    Ok(member != 0)
}

/// The string SID (`S-1-5-21-…`) of the local group `name`.
fn group_sid(name: &str) -> io::Result<String> {
    use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
    use windows_sys::Win32::Security::{LookupAccountNameW, SID_NAME_USE};
    let wide: Vec<u16> = name.encode_utf16().chain(Some(0)).collect();
    let mut sid = vec![0u8; 256];
    let mut sid_len = sid.len() as u32;
    let mut domain = vec![0u16; 256];
    let mut domain_len = domain.len() as u32;
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: every buffer is valid for the length passed with it; `wide` is NUL-terminated.
    let ok = unsafe {
        LookupAccountNameW(
            std::ptr::null(),
            wide.as_ptr(),
            sid.as_mut_ptr().cast(),
            &mut sid_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` holds the SID LookupAccountNameW wrote; `text` is a valid out-pointer.
    if unsafe { ConvertSidToStringSidW(sid.as_mut_ptr().cast(), &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ConvertSidToStringSidW returned a NUL-terminated UTF-16 string we now own.
    let result = unsafe {
        let len = (0..).take_while(|&i| *text.add(i) != 0).count();
        String::from_utf16_lossy(std::slice::from_raw_parts(text, len))
    };
    // SAFETY: the string was allocated by ConvertSidToStringSidW, released with LocalFree, once.
    unsafe {
        LocalFree(text.cast());
    }
    Ok(result)
}
