#!/usr/bin/env bash
# tests/windows/msi.sh HELPER_EXE APP_EXE WORKDIR — Warren's MSI (installer/windows/build-msi.sh,
# wixl) built, read back and installed under Wine. Called by tests/windows/run.sh (part `msi`),
# which has built both executables and the Wine prefix (with the stub bcryptprimitives.dll).
#
# Checks, each printed as `ok: ...` (the first failure stops the run):
#   1. wintun.dll's pinned checksums: a DLL that is not WireGuard LLC's (--wintun-dll) and an
#      archive that is not wintun-0.14.1.zip (--wintun-zip) are REFUSED and no .msi is written;
#   2. a test build (--test-wintun: a stand-in DLL built here from stub/wintun-test.c) is named
#      Warren-<ver>-x64-TEST-NOT-FOR-RELEASE.msi, its summary says NOT FOR RELEASE and its
#      property WARREN_TEST_BUILD is 1;
#   3. its tables (msiinfo): ProductVersion is the workspace's; File: the three files in
#      INSTALLDIR (Program Files\Warren); Directory: DATADIR = Warren under CommonAppDataFolder,
#      created (CreateFolder) with the SDDL of helper/src/sys/windows/acl.rs (MsiLockPermissionsEx);
#      ServiceControl: the service name of helper/src/sys/windows/service.rs, started on install,
#      stopped on install and uninstall, deleted on uninstall, waited for; CustomAction: `service
#      install` deferred without impersonation, `service uninstall` as its rollback; the
#      sequence: old product removed right after InstallValidate, the custom actions after the
#      files and before StartServices; msiextract gives back the three files byte for byte;
#   4. under Wine, `msiexec /i /qn`: the files in C:\Program Files\Warren, C:\ProgramData\Warren,
#      the Start menu shortcut, the service registered by the custom action (ImagePath with
#      `daemon --service`, automatic start, LocalSystem, Nsi + TcpIp), RUNNING, and the installed
#      CLI's `status` answered over \\.\pipe\warren-helper by that service;
#   5. `msiexec /x /qn`: the service stopped (its log says it stopped cleanly) and deleted, the
#      files, the shortcut, the registry value and the empty C:\ProgramData\Warren gone.
# What Wine does differently from Windows is printed as `WINE: ...` (README, Windows under Wine).
set -uo pipefail

HELPER=${1:?usage: msi.sh HELPER_EXE APP_EXE WORKDIR}
APP=${2:?usage: msi.sh HELPER_EXE APP_EXE WORKDIR}
WORK=${3:?usage: msi.sh HELPER_EXE APP_EXE WORKDIR}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="$ROOT/tests/windows/wine-run.sh"
BUILD="$ROOT/installer/windows/build-msi.sh"
DIR="$WORK/msi"
PREFIX="${WARREN_WINE_PREFIX:?set by tests/windows/run.sh}"
DRIVE_C="$PREFIX/drive_c"
SERVICE_NAME="$(sed -n 's/^pub const SERVICE_NAME: &str = "\(.*\)";$/\1/p' "$ROOT/helper/src/sys/windows/service.rs")"
SDDL="$(sed -n 's/^pub const ADMIN_ONLY_SDDL: &str = "\(.*\)";$/\1/p' "$ROOT/helper/src/sys/windows/acl.rs")"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
OUT="" RC=0

say() { printf '[windows/msi] %s\n' "$*" >&2; }
ok() { printf '[windows/msi] ok: %s\n' "$*" >&2; }
wine_note() { printf '[windows/msi] WINE: %s\n' "$*" >&2; }
fail() {
    printf '[windows/msi] FAILED: %s\n' "$*" >&2
    exit 1
}

# capture CMD... — bounded, stdout+stderr in OUT (through a file: see e2e.sh), status in RC.
capture() {
    timeout 300 "$@" >"$DIR/out" 2>&1 </dev/null
    RC=$?
    OUT="$(tr -d '\r' <"$DIR/out")"
}

# row TABLE — the MSI's TABLE as tab-separated rows (msiinfo export, without its 3 header lines).
rows() { msiinfo export "$MSI" "$1" | tr -d '\r' | tail -n +4; }
expect_row() {
    rows "$1" | grep -qxF "$2" || fail "table $1 has no row '$2'; it has:$(printf '\n%s' "$(rows "$1")")"
}
seq_of() { rows InstallExecuteSequence | awk -F'\t' -v a="$1" '$1 == a { print $3 }'; }

# same_files DIR — DIR holds the three packaged files, byte for byte.
same_files() {
    cmp -s "$1/warren-helper.exe" "$HELPER" || return 1
    cmp -s "$1/warren-app.exe" "$APP" || return 1
    cmp -s "$1/wintun.dll" "$DIR/wintun-test.dll"
}

winpath() { printf 'Z:%s' "${1//\//\\}"; }

check_tools() {
    local t
    for t in wixl msiinfo msiextract msibuild zip unzip x86_64-w64-mingw32-gcc; do
        command -v "$t" >/dev/null 2>&1 || fail "$t is missing (sudo scripts/setup.sh)"
    done
    [[ -n $SERVICE_NAME && $SDDL == D:P* && -n $VERSION ]] ||
        fail "cannot read SERVICE_NAME, ADMIN_ONLY_SDDL or the version from the sources"
}

refusals() {
    x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror -shared -o "$DIR/wintun-test.dll" \
        "$ROOT/tests/windows/stub/wintun-test.c" || fail "building the stand-in wintun.dll failed"
    mkdir -p "$DIR/refused"
    capture "$BUILD" --helper "$HELPER" --app "$APP" --wintun-dll "$DIR/wintun-test.dll" --out "$DIR/refused"
    [[ $RC -ne 0 && $OUT == *"REFUSED wintun.dll"*"not the pinned e5da8447"* ]] ||
        fail "a wintun.dll with the wrong SHA-256 was not refused (exit $RC): $OUT"
    ok "a wintun.dll that is not WireGuard LLC's 0.14.1 is refused: $(grep REFUSED <<<"$OUT" | cut -c1-160)..."
    rm -rf "$DIR/zip" && mkdir -p "$DIR/zip/wintun/bin/amd64"
    cp "$DIR/wintun-test.dll" "$DIR/zip/wintun/bin/amd64/wintun.dll"
    (cd "$DIR/zip" && zip -qr ../wintun-0.14.1.zip wintun) || fail "zip failed"
    capture "$BUILD" --helper "$HELPER" --app "$APP" --wintun-zip "$DIR/wintun-0.14.1.zip" --out "$DIR/refused"
    [[ $RC -ne 0 && $OUT == *"REFUSED the Wintun archive"*"not the pinned 07c25618"* ]] ||
        fail "a Wintun archive with the wrong SHA-256 was not refused (exit $RC): $OUT"
    ok "an archive that is not wintun-0.14.1.zip is refused"
    [[ -z "$(ls -A "$DIR/refused")" ]] || fail "a refused build left files: $(ls "$DIR/refused")"
    ok "nothing was built by the refused runs"
    say "not covered here (no test can run it on this machine): a build with WireGuard LLC's real wintun.dll (wintun.net is not reachable;"
    say "  on a machine that can reach it, installer/windows/build-msi.sh downloads and checks it)"
}

build() {
    local start=$SECONDS
    capture "$BUILD" --helper "$HELPER" --app "$APP" --test-wintun "$DIR/wintun-test.dll" --out "$DIR/out-msi"
    [[ $RC -eq 0 ]] || fail "build-msi.sh --test-wintun failed (exit $RC): $OUT"
    MSI="$DIR/out-msi/Warren-$VERSION-x64-TEST-NOT-FOR-RELEASE.msi"
    [[ -f $MSI && $(ls "$DIR/out-msi") == "$(basename "$MSI")" ]] ||
        fail "expected exactly $MSI, found: $(ls "$DIR/out-msi")"
    ok "test build: $(basename "$MSI") ($(du -m "$MSI" | cut -f1) MB, $((SECONDS - start)) s)"
    msiinfo suminfo "$MSI" | grep -q '^Subject: .*TEST BUILD, NOT FOR RELEASE' ||
        fail "the summary does not say NOT FOR RELEASE: $(msiinfo suminfo "$MSI")"
    expect_row Property $'WARREN_TEST_BUILD\t1'
    ok "marked as a test build (summary, WARREN_TEST_BUILD=1)"
}

tables() {
    expect_row Property $'ProductVersion\t'"$VERSION"
    expect_row Property $'ProductName\tWarren'
    expect_row Property $'ALLUSERS\t1'
    expect_row Directory $'INSTALLDIR\tProgramFiles64Folder\tWarren'
    expect_row Directory $'DATADIR\tCommonAppDataFolder\tWarren'
    local f
    for f in warren-helper.exe warren-app.exe wintun.dll; do
        rows File | awk -F'\t' -v f="$f" '$3 == f' | grep -q . || fail "no $f in the File table"
    done
    [[ $(rows File | wc -l) -eq 3 ]] || fail "the File table is not exactly three files: $(rows File)"
    rows Component | awk -F'\t' '$3 == "INSTALLDIR"' | wc -l | grep -qx 3 ||
        fail "the three files are not all in INSTALLDIR: $(rows Component)"
    ok "version $VERSION, three files in Program Files\\Warren"
    expect_row CreateFolder $'DATADIR\tDataDir'
    expect_row MsiLockPermissionsEx $'DataDirAdminOnly\tDATADIR\tCreateFolder\t'"$SDDL"$'\t'
    ok "C:\\ProgramData\\Warren created with the helper's DACL $SDDL"
    # 163 = start on install (1) + stop on install (2) and uninstall (32) + delete on uninstall (128).
    expect_row ServiceControl $'WarrenHelperServiceControl\t'"$SERVICE_NAME"$'\t163\t\t1\tWarrenHelper'
    # 3090 = exe from an installed file (18) + deferred (1024) + no impersonation (2048);
    # 2386 = 18 + continue on error (64) + rollback (256) + no impersonation.
    expect_row CustomAction $'WarrenHelperInstall\t3090\twarren_helper.exe\tservice install\t'
    expect_row CustomAction $'WarrenHelperRollback\t2386\twarren_helper.exe\tservice uninstall\t'
    [[ -z "$(rows ServiceInstall)" ]] || fail "a ServiceInstall row: the service is defined by service.rs only"
    ok "service $SERVICE_NAME: installed by \`warren-helper.exe service install\` (rollback: uninstall), started/stopped/deleted by ServiceControl"
    local iv rep ii files inst roll start
    iv=$(seq_of InstallValidate) rep=$(seq_of RemoveExistingProducts) ii=$(seq_of InstallInitialize)
    files=$(seq_of InstallFiles) roll=$(seq_of WarrenHelperRollback) inst=$(seq_of WarrenHelperInstall)
    start=$(seq_of StartServices)
    ((iv < rep && rep < ii)) || fail "RemoveExistingProducts ($rep) not between InstallValidate ($iv) and InstallInitialize ($ii)"
    ((files < roll && roll < inst && inst < start)) ||
        fail "the order InstallFiles ($files) < rollback ($roll) < install ($inst) < StartServices ($start) does not hold"
    ok "sequence: upgrades remove the old product first ($rep); service install at $inst, before StartServices ($start)"
    rm -rf "$DIR/extract"
    capture msiextract -C "$DIR/extract" "$MSI"
    [[ $RC -eq 0 ]] || fail "msiextract failed: $OUT"
    local base="$DIR/extract/Warren"
    same_files "$base" ||
        fail "msiextract does not give back the three files: $(find "$DIR/extract" -type f)"
    ok "msiextract gives back the three files byte for byte"
}

reg_query() { capture "$RUN" reg query "$1"; }

wine_install() {
    local start=$SECONDS inst="$DRIVE_C/Program Files/Warren" shortcut=""
    capture "$RUN" msiexec /i "$(winpath "$MSI")" /qn /l*v "$(winpath "$DIR/install.log")"
    [[ $RC -eq 0 ]] || fail "msiexec /i failed (exit $RC): $OUT; log: $(grep -a 'Return value 3' "$DIR/install.log")"
    ok "msiexec /i /qn under Wine ($((SECONDS - start)) s)"
    same_files "$inst" ||
        fail "C:\\Program Files\\Warren does not hold the three files: $(ls -la "$inst" 2>&1)"
    ok "C:\\Program Files\\Warren: warren-helper.exe, warren-app.exe, wintun.dll"
    [[ -d $DRIVE_C/ProgramData/Warren ]] || fail "no C:\\ProgramData\\Warren"
    ok "C:\\ProgramData\\Warren exists"
    shortcut="$(find "$DRIVE_C" -path '*Start Menu/Programs/Warren.lnk' | head -n 1)"
    [[ -n $shortcut ]] || fail "no Start menu shortcut Warren.lnk"
    ok "Start menu shortcut: ${shortcut#"$DRIVE_C"/}"
    [[ $shortcut == *ProgramData* ]] ||
        wine_note "the all-users shortcut went to the user's Start menu (${shortcut#"$DRIVE_C"/}), not C:\\ProgramData's"

    reg_query "HKLM\\System\\CurrentControlSet\\Services\\$SERVICE_NAME"
    [[ $RC -eq 0 ]] || fail "service $SERVICE_NAME not registered: $OUT"
    local want
    for want in 'ImagePath    REG_SZ    "C:\Program Files\Warren\warren-helper.exe" daemon --service' \
        'Start    REG_DWORD    0x2' 'ObjectName    REG_SZ    LocalSystem' \
        'DependOnService    REG_MULTI_SZ    Nsi\0TcpIp' 'DisplayName    REG_SZ    Warren VPN helper'; do
        grep -qF "$want" <<<"$OUT" || fail "the service's key lacks '$want': $OUT"
    done
    ok "service $SERVICE_NAME registered by the custom action: daemon --service, automatic, LocalSystem, after Nsi and TcpIp"
    for _ in $(seq 1 20); do
        capture "$RUN" sc query "$SERVICE_NAME"
        [[ $OUT == *RUNNING* ]] && break
        sleep 1
    done
    [[ $OUT == *RUNNING* ]] || fail "service $SERVICE_NAME not RUNNING after 20 s: $OUT"
    ok "service RUNNING (started by StartServices)"
    capture "$RUN" 'C:\Program Files\Warren\warren-helper.exe' status
    [[ $RC -eq 0 && $OUT == *"no tunnel is up"* ]] || fail "the installed CLI's status failed (exit $RC): $OUT"
    ok "the installed CLI's status is answered by the service over \\\\.\\pipe\\warren-helper"
    local log
    log="$(find "$DRIVE_C" -path '*/Warren/logs/*.log' | head -n 1)"
    [[ -n $log ]] || fail "the service wrote no log under a Warren\\logs directory"
    if [[ $log != "$DRIVE_C/ProgramData/"* ]]; then
        wine_note "the service's %ProgramData% is not C:\\ProgramData: its state and logs are in ${log#"$DRIVE_C"/} (Wine's services.exe environment)"
    fi
    # What `service install` sets beyond CreateService; Windows keeps both in the service's key.
    reg_query "HKLM\\System\\CurrentControlSet\\Services\\$SERVICE_NAME"
    [[ $OUT == *FailureActions* ]] ||
        wine_note "no FailureActions in the service's key: Wine's SCM ignores failure actions (restart on failure untested)"
    [[ $OUT == *FailureActionsOnNonCrashFailures* && $OUT == *ServiceSidType* ]] ||
        wine_note "Wine's SCM rejects SERVICE_CONFIG_FAILURE_ACTIONS_FLAG and SERVICE_CONFIG_SERVICE_SID_INFO (ERROR_INVALID_LEVEL): \`service install\` warns and goes on"
    wine_note "MsiLockPermissionsEx is not applied and no DACL is kept (Wine keeps no DACLs)"
    SERVICE_LOG=$log
}

wine_uninstall() {
    local start=$SECONDS
    capture "$RUN" msiexec /x "$(winpath "$MSI")" /qn /l*v "$(winpath "$DIR/uninstall.log")"
    [[ $RC -eq 0 ]] || fail "msiexec /x failed (exit $RC): $OUT"
    ok "msiexec /x /qn under Wine ($((SECONDS - start)) s)"
    grep -q 'service stop requested' "$SERVICE_LOG" || fail "the service was not asked to stop"
    grep -q 'daemon: stopped' "$SERVICE_LOG" ||
        fail "the service's log does not show a clean stop: $(tail -n 5 "$SERVICE_LOG")"
    ok "the service was stopped (its daemon took everything down and said so)"
    reg_query "HKLM\\System\\CurrentControlSet\\Services\\$SERVICE_NAME"
    [[ $RC -ne 0 ]] || fail "service $SERVICE_NAME still registered after uninstall: $OUT"
    capture "$RUN" sc query "$SERVICE_NAME"
    [[ $OUT != *RUNNING* ]] || fail "service still running: $OUT"
    ok "service deleted"
    [[ ! -e "$DRIVE_C/Program Files/Warren" ]] || fail "C:\\Program Files\\Warren is still there: $(ls -la "$DRIVE_C/Program Files/Warren")"
    [[ -z "$(find "$DRIVE_C" -path '*Start Menu/Programs/Warren.lnk')" ]] || fail "the shortcut is still there"
    reg_query 'HKLM\Software\Warren'
    [[ $RC -ne 0 ]] || fail "HKLM\\Software\\Warren is still there: $OUT"
    [[ ! -e $DRIVE_C/ProgramData/Warren ]] || fail "the empty C:\\ProgramData\\Warren is still there"
    ok "files, shortcut, registry value and the empty C:\\ProgramData\\Warren removed"
}

main() {
    rm -rf "$DIR" && mkdir -p "$DIR"
    check_tools
    say "MSI of $HELPER and $APP (version $VERSION, service $SERVICE_NAME)"
    refusals
    build
    tables
    wine_install
    wine_uninstall
}

main
