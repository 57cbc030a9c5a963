//! Windows: the helper's directories under `%ProgramData%\Warren` (the state directory with the
//! journals, the system tunnels) are for the system and the administrators only — the twin of
//! the Unix 0700 root-owned directories — and a system tunnel's file that anyone else may change
//! is refused, as on Unix. [`harden_dir`] gives a directory a protected DACL (`ADMIN_ONLY_SDDL`:
//! SYSTEM and Administrators, full control, inherited by what is created inside, nothing
//! inherited from `%ProgramData%`, whose default lets every user create files);
//! [`check_admin_only`] reads an object's owner and DACL as SDDL and lets [`crate::sys::sddl`]
//! decide.

use std::io;
use std::path::Path;
use windows_sys::core::PWSTR;
use windows_sys::Win32::Foundation::{LocalFree, ERROR_SUCCESS};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, GetNamedSecurityInfoW,
    SetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    GetSecurityDescriptorDacl, ACL, DACL_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
};

use super::pipe::SecurityDescriptor;

/// SYSTEM and Administrators, full control, inherited by files and subdirectories; protected
/// (`P`): nothing inherited from the parent.
pub const ADMIN_ONLY_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// Creates `dir` (and its parents) if needed and gives it [`ADMIN_ONLY_SDDL`]'s DACL, replacing
/// whatever it had: an existing directory is hardened too.
pub fn harden_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_protected_dacl(dir, ADMIN_ONLY_SDDL)
}

/// Replaces `path`'s DACL by the one in `sddl` (`D:P...`), protected from inheritance; owner,
/// group and SACL stay as they are.
fn set_protected_dacl(path: &Path, sddl: &str) -> io::Result<()> {
    let descriptor = SecurityDescriptor::from_sddl(sddl)?;
    let mut present = 0;
    let mut defaulted = 0;
    let mut dacl: *mut ACL = std::ptr::null_mut();
    // SAFETY: the descriptor is valid for this call; the out-pointers are valid locals. The DACL
    // pointer points into the descriptor, which outlives its use below.
    let ok = unsafe {
        GetSecurityDescriptorDacl(descriptor.as_ptr(), &mut present, &mut dacl, &mut defaulted)
    };
    if ok == 0 || present == 0 {
        return Err(io::Error::other(format!(
            "the security descriptor {sddl} has no DACL"
        )));
    }
    let wide = wide(path);
    // SAFETY: `wide` is a NUL-terminated path that outlives the call; `dacl` is a valid DACL
    // inside `descriptor`; owner, group and SACL are not changed (null).
    let status = unsafe {
        SetNamedSecurityInfoW(
            wide.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            dacl,
            std::ptr::null(),
        )
    };
    if status != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(status as i32));
    }
    Ok(())
}

/// `Ok` when only SYSTEM, the Administrators (and TrustedInstaller) can change `path`; otherwise
/// why not, for the error message. A descriptor that cannot be read is an error too.
pub fn check_admin_only(path: &Path) -> Result<(), String> {
    let sddl = sddl_of(path).map_err(|err| format!("its permissions cannot be read ({err})"))?;
    let us = own_sid().map_err(|err| format!("this process's user is not known ({err})"))?;
    crate::sys::sddl::check_admin_only(&sddl, Some(&us))
}

/// This process's user, as a string SID (`S-1-5-18` for LocalSystem, the service's account).
pub fn own_sid() -> io::Result<String> {
    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
    use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
    use windows_sys::Win32::Security::{GetTokenInformation, TokenUser, TOKEN_QUERY, TOKEN_USER};
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the current-process pseudo handle needs no closing; `token` is a valid out-pointer.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // TOKEN_USER and the SID it points to; u64s keep the buffer aligned for the struct.
    let mut buffer = vec![0u64; 64];
    let mut needed = 0u32;
    // SAFETY: `buffer` is valid for the byte length passed; `token` is the open token above.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenUser,
            buffer.as_mut_ptr().cast(),
            (buffer.len() * 8) as u32,
            &mut needed,
        )
    };
    let error = io::Error::last_os_error();
    // SAFETY: `token` was opened above and is closed once.
    unsafe { CloseHandle(token) };
    if ok == 0 {
        return Err(error);
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points into the buffer.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` is a valid SID inside `buffer`, which lives across the call.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ConvertSidToStringSidW returned a NUL-terminated UTF-16 string we now own; it is
    // released with LocalFree, once.
    let result = unsafe {
        let len = (0..).take_while(|&i| *text.add(i) != 0).count();
        let result = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
        LocalFree(text.cast());
        result
    };
    Ok(result)
}

/// The owner and DACL of `path` as SDDL.
pub fn sddl_of(path: &Path) -> io::Result<String> {
    let wide = wide(path);
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `wide` is a NUL-terminated path; the owner/DACL out-pointers may be null (they
    // would point into the descriptor); `descriptor` receives a LocalAlloc'd block freed below.
    let status = unsafe {
        GetNamedSecurityInfoW(
            wide.as_ptr(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut descriptor,
        )
    };
    if status != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(status as i32));
    }
    let mut text: PWSTR = std::ptr::null_mut();
    let mut len = 0u32;
    // SAFETY: `descriptor` is the valid descriptor just returned; `text` receives a LocalAlloc'd
    // NUL-terminated string of `len` characters, freed below.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor,
            SDDL_REVISION_1,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut text,
            &mut len,
        )
    };
    let result = if ok == 0 || text.is_null() {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: `text` points to a NUL-terminated UTF-16 string the call allocated.
        let units = unsafe {
            let mut n = 0;
            while *text.add(n) != 0 {
                n += 1;
            }
            std::slice::from_raw_parts(text, n)
        };
        Ok(String::from_utf16_lossy(units))
    };
    // SAFETY: both blocks were allocated by the calls above with LocalAlloc (or are null).
    unsafe {
        if !text.is_null() {
            LocalFree(text.cast());
        }
        LocalFree(descriptor);
    }
    result
}

fn wide(path: &Path) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt as _;
    path.as_os_str().encode_wide().chain(Some(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::test_dir::TempDir;

    /// On Windows the whole story; under Wine, which derives a file's descriptor from its Unix
    /// mode and keeps no DACL that is set (README, "Windows under Wine"), the calls and the
    /// reading of what Wine reports, and the refusal only where the DACL was kept.
    #[test]
    fn a_hardened_dir_and_its_new_files_are_admin_only_and_a_loosened_file_is_refused() {
        let us = own_sid().unwrap();
        assert!(us.starts_with("S-1-5-"), "{us}");
        let dir = TempDir::new("acl");
        let state = dir.0.join("Warren");
        harden_dir(&state).unwrap();
        let sddl = sddl_of(&state).unwrap();
        assert_eq!(check_admin_only(&state), Ok(()), "{sddl}");
        let file = state.join("wg0.conf");
        std::fs::write(&file, "[Interface]\n").unwrap();
        assert_eq!(
            check_admin_only(&file),
            Ok(()),
            "{}",
            sddl_of(&file).unwrap()
        );
        if !sddl.contains("D:P") {
            eprintln!(
                "NOTE: the DACL set was not kept ({sddl}): Wine does not keep file DACLs; the \
                 refusal of a loosened file is covered by sys::sddl's tests only"
            );
            return;
        }

        // Everyone may write it: refused, naming who.
        set_protected_dacl(&file, "D:P(A;;FA;;;SY)(A;;FA;;;WD)").unwrap();
        let refused = check_admin_only(&file).unwrap_err();
        assert!(refused.contains("WD may change it"), "{refused}");
    }
}
