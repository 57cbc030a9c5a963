//! Reading a Windows security descriptor in its SDDL form, to answer one question: may anyone
//! but the system and the administrators change this file or directory? The Windows twin of the
//! Unix "owned by root, not writable by group or others" rule that the helper applies to the
//! system tunnels' `.conf`/`.autostart` files and to its state directory (`sys::windows::acl`
//! reads the descriptor; this module decides). Pure, so it is compiled and unit-tested on every
//! OS.
//!
//! What counts (see [`check_admin_only`]): the owner (who can always rewrite the DACL) must be
//! trusted; a missing DACL (`D:NO_ACCESS_CONTROL`, or no `D:` at all) lets everyone in; each
//! *allow* ACE that applies to the object itself (not inherit-only) and grants a right that
//! changes it — write or append data, delete, write the DACL or the owner, generic write/all —
//! must name a trusted SID. Deny ACEs only take rights away, so they are not needed for the
//! answer. Trusted: LocalSystem, the Administrators group and TrustedInstaller.

/// The SIDs trusted with a system tunnel's files: LocalSystem, Administrators, TrustedInstaller
/// (as SDDL aliases and as SID strings).
const TRUSTED: &[&str] = &[
    "SY",
    "S-1-5-18",
    "BA",
    "S-1-5-32-544",
    "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",
];

/// The access-mask bits that change a file or directory: FILE_WRITE_DATA / add file,
/// FILE_APPEND_DATA / add subdirectory, DELETE, WRITE_DAC, WRITE_OWNER, GENERIC_ALL,
/// GENERIC_WRITE (and FILE_DELETE_CHILD for a directory).
const CHANGING: u32 = 0x2 | 0x4 | 0x40 | 0x1_0000 | 0x4_0000 | 0x8_0000 | 0x1000_0000 | 0x4000_0000;

/// The two-letter access rights of SDDL and their bits (the generic, standard, file and
/// directory-service spellings that `ConvertSecurityDescriptorToStringSecurityDescriptor`
/// writes).
const RIGHTS: &[(&str, u32)] = &[
    ("GA", 0x1000_0000),
    ("GX", 0x2000_0000),
    ("GW", 0x4000_0000),
    ("GR", 0x8000_0000),
    ("FA", 0x1F_01FF),
    ("FR", 0x12_0089),
    ("FW", 0x12_0116),
    ("FX", 0x12_00A0),
    ("RC", 0x2_0000),
    ("SD", 0x1_0000),
    ("WD", 0x4_0000),
    ("WO", 0x8_0000),
    ("CC", 0x1),
    ("DC", 0x2),
    ("LC", 0x4),
    ("SW", 0x8),
    ("RP", 0x10),
    ("WP", 0x20),
    ("DT", 0x40),
    ("LO", 0x80),
    ("CR", 0x100),
    ("KA", 0xF_003F),
    ("KR", 0x2_0019),
    ("KW", 0x2_0006),
    ("KX", 0x2_0019),
];

/// `Ok` when only trusted SIDs can change the object `sddl` describes (its owner and DACL, as
/// `O:...D:...`); otherwise says who else can, in words for the error message. `us`, the
/// process's own user SID, is trusted too: as on Unix, where a file must be owned by the
/// helper's own uid, a helper run by an administrator (or a test) owns what it creates.
pub fn check_admin_only(sddl: &str, us: Option<&str>) -> Result<(), String> {
    let is_trusted =
        |sid: &str| is_trusted(sid) || us.is_some_and(|us| us.eq_ignore_ascii_case(sid));
    let (owner, dacl) = split(sddl)?;
    match owner {
        Some(owner) if is_trusted(owner) => {}
        Some(owner) => return Err(format!("it is owned by {owner}")),
        None => return Err("its owner is not known".into()),
    }
    let Some(dacl) = dacl else {
        return Err("it has no access control list (everyone may write it)".into());
    };
    // The DACL's flags (P, AI, AR, NO_ACCESS_CONTROL) come before its first entry.
    let flags = &dacl[..dacl.find('(').unwrap_or(dacl.len())];
    if flags.contains("NO_ACCESS_CONTROL") {
        return Err("it has no access control list (everyone may write it)".into());
    }
    let mut writers = Vec::new();
    for ace in aces(dacl)? {
        let fields: Vec<&str> = ace.split(';').collect();
        let [kind, flags, rights, _object, _inherited_object, sid, ..] = fields[..] else {
            return Err(format!("unreadable access entry ({ace})"));
        };
        if kind != "A" || has_flag(flags, "IO") {
            continue;
        }
        if mask(rights)? & CHANGING != 0 && !is_trusted(sid) && !writers.contains(&sid) {
            writers.push(sid);
        }
    }
    if writers.is_empty() {
        Ok(())
    } else {
        Err(format!("{} may change it", writers.join(", ")))
    }
}

/// The owner (`O:`) and the DACL (`D:` with its flags and ACEs) of an SDDL string; the group
/// and the SACL are skipped.
fn split(sddl: &str) -> Result<(Option<&str>, Option<&str>), String> {
    let mut owner = None;
    let mut dacl = None;
    let mut rest = sddl.trim();
    while !rest.is_empty() {
        let (tag, body) = rest
            .split_at_checked(2)
            .filter(|(tag, _)| matches!(*tag, "O:" | "G:" | "D:" | "S:"))
            .ok_or_else(|| format!("unreadable security descriptor ({sddl})"))?;
        // A part ends where the next tag starts; ACEs are in parentheses, which hold no tag.
        let mut depth = 0;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0
                    && ["O:", "G:", "D:", "S:"]
                        .iter()
                        .any(|t| body[i..].starts_with(t)) =>
                {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let value = &body[..end];
        match tag {
            "O:" => owner = Some(value),
            "D:" => dacl = Some(value),
            _ => {}
        }
        rest = &body[end..];
    }
    Ok((owner, dacl))
}

/// The parenthesised ACE strings of a DACL's body.
fn aces(dacl: &str) -> Result<Vec<&str>, String> {
    let mut aces = Vec::new();
    let mut rest = dacl;
    while let Some(start) = rest.find('(') {
        let end = rest[start..]
            .find(')')
            .ok_or_else(|| format!("unterminated access entry in {dacl}"))?;
        aces.push(&rest[start + 1..start + end]);
        rest = &rest[start + end + 1..];
    }
    Ok(aces)
}

/// Whether the ACE flags (two-letter codes, concatenated) include `flag`.
fn has_flag(flags: &str, flag: &str) -> bool {
    flags
        .as_bytes()
        .chunks(2)
        .any(|code| code == flag.as_bytes())
}

/// The access mask of an ACE's rights field: hex (`0x1f01ff`) or two-letter codes.
fn mask(rights: &str) -> Result<u32, String> {
    if let Some(hex) = rights
        .strip_prefix("0x")
        .or_else(|| rights.strip_prefix("0X"))
    {
        return u32::from_str_radix(hex, 16)
            .map_err(|_| format!("unreadable access mask {rights}"));
    }
    if let Ok(decimal) = rights.parse::<u32>() {
        return Ok(decimal);
    }
    rights
        .as_bytes()
        .chunks(2)
        .map(|code| {
            let code = std::str::from_utf8(code).unwrap_or_default();
            RIGHTS
                .iter()
                .find(|(name, _)| *name == code)
                .map(|(_, bits)| *bits)
                .ok_or_else(|| format!("unknown access right {code} in {rights}"))
        })
        .try_fold(0, |all, bits| bits.map(|bits| all | bits))
}

fn is_trusted(sid: &str) -> bool {
    TRUSTED
        .iter()
        .any(|trusted| trusted.eq_ignore_ascii_case(sid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helpers_own_descriptor_is_admin_only() {
        assert_eq!(
            check_admin_only("O:BAG:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", None),
            Ok(())
        );
        // As Windows spells an inherited one, with a trusted installer and read-only users.
        assert_eq!(
            check_admin_only(
                "O:SYD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)\
                 (A;ID;FA;;;S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464)",
                None
            ),
            Ok(())
        );
    }

    #[test]
    fn other_writers_and_owners_are_named() {
        assert_eq!(
            check_admin_only("O:SYD:(A;;FA;;;SY)(A;;0x1301bf;;;AU)(A;;FW;;;BU)", None),
            Err("AU, BU may change it".into())
        );
        assert_eq!(
            check_admin_only("O:S-1-5-21-1-2-3-1001D:(A;;FA;;;SY)", None),
            Err("it is owned by S-1-5-21-1-2-3-1001".into())
        );
        assert_eq!(
            check_admin_only("O:BAD:(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;WD)", None),
            Err("WD may change it".into()),
            "everyone, with rights spelled out"
        );
        assert_eq!(
            check_admin_only("O:BAD:(A;;WD;;;BU)", None),
            Err("BU may change it".into()),
            "whoever may rewrite the DACL may change it"
        );
    }

    #[test]
    fn the_processs_own_user_is_trusted_like_its_uid_on_unix() {
        let sddl = "O:S-1-5-21-7-8-9-1001D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;S-1-5-21-7-8-9-1001)";
        assert_eq!(check_admin_only(sddl, Some("S-1-5-21-7-8-9-1001")), Ok(()));
        assert_eq!(
            check_admin_only(sddl, Some("S-1-5-21-7-8-9-1002")),
            Err("it is owned by S-1-5-21-7-8-9-1001".into())
        );
    }

    #[test]
    fn only_allow_entries_on_the_object_itself_count() {
        // Inherit-only entries apply to children, deny entries only take rights away, and
        // read-only entries change nothing.
        assert_eq!(
            check_admin_only(
                "O:SYD:P(A;;FA;;;SY)(A;OICIIO;GA;;;CO)(D;;FA;;;WD)(A;;FR;;;WD)(A;;0x1200a9;;;BU)",
                None,
            ),
            Ok(())
        );
    }

    #[test]
    fn a_missing_dacl_or_owner_is_refused_and_garbage_is_unreadable() {
        assert!(check_admin_only("O:SYD:NO_ACCESS_CONTROL", None)
            .unwrap_err()
            .contains("no access control list"));
        assert!(check_admin_only("O:SY", None)
            .unwrap_err()
            .contains("no access control list"));
        assert_eq!(
            check_admin_only("D:(A;;FA;;;SY)", None),
            Err("its owner is not known".into())
        );
        assert!(check_admin_only("X:whatever", None)
            .unwrap_err()
            .contains("unreadable"));
        assert!(check_admin_only("O:SYD:(A;;ZZ;;;BU)", None)
            .unwrap_err()
            .contains("unknown access right ZZ"));
        assert!(check_admin_only("O:SYD:(A;;FA", None)
            .unwrap_err()
            .contains("unterminated"));
        assert!(check_admin_only("O:SYD:(A;FA;SY)", None)
            .unwrap_err()
            .contains("unreadable access entry"));
    }
}
