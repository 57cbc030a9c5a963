#!/usr/bin/env bash
# installer/windows/build-msi.sh — Warren's Windows installer, built on Linux with wixl (Debian's
# msitools) from installer/windows/warren.wxs. See installer/README.md, "Windows".
#
# Usage:
#   installer/windows/build-msi.sh [--helper EXE] [--app EXE] [--debug]
#       [--wintun-zip ZIP | --wintun-dll DLL | --test-wintun DLL] [--out DIR]
#
#   --helper, --app  warren-helper.exe and warren-app.exe for x86_64-pc-windows-gnu [default: the
#                    release builds in target/x86_64-pc-windows-gnu/release/, made with
#                    `cargo build --release --target x86_64-pc-windows-gnu -p warren-helper` and
#                    the same for `-p warren-app` after building the UI (npm --prefix ui run build)]
#   --debug          the debug builds instead (target/x86_64-pc-windows-gnu/debug/): a test build
#   --wintun-zip     WireGuard LLC's wintun-0.14.1.zip (from https://www.wintun.net/); its
#                    SHA-256 must be WINTUN_ZIP_SHA256, and the bin/amd64/wintun.dll inside must
#                    be WINTUN_DLL_SHA256. Also taken from $WARREN_WINTUN_ZIP.
#   --wintun-dll     that bin/amd64/wintun.dll alone (already extracted); must be WINTUN_DLL_SHA256
#   (neither)        wintun-0.14.1.zip is downloaded from wintun.net into
#                    target/windows/wintun-0.14.1.zip (kept for the next build), then checked as
#                    --wintun-zip; where wintun.net cannot be reached this fails, saying what to pass
#   --test-wintun    ANY DLL as wintun.dll, unchecked, for tests on machines without the real
#                    one: the MSI is then named Warren-<ver>-x64-TEST-NOT-FOR-RELEASE.msi, its
#                    summary says so, and its property WARREN_TEST_BUILD is 1 (as with --debug)
#   --out            where the .msi goes [default: target/windows]
#
# Output: target/windows/Warren-<ver>-x64.msi (<ver> from the workspace's Cargo.toml). A checksum
# mismatch or a missing input builds nothing and exits 1 naming the file and both checksums.
#
# After wixl, two things wixl cannot express are added with msibuild (the source says why):
#   - WarrenHelperRollback's type gets msidbCustomActionTypeRollback (wixl ignores Execute=rollback);
#   - MsiLockPermissionsEx: %ProgramData%\Warren created with the helper's own protected DACL,
#     ADMIN_ONLY_SDDL read from helper/src/sys/windows/acl.rs (one definition for both).
#
# Not done here (a signing machine's job; README): Authenticode signatures on warren-helper.exe and
# warren-app.exe BEFORE this script packs them, and on the .msi after (signtool sign /fd sha256
# /tr <timestamp URL>, or osslsigncode). wintun.dll is already signed by WireGuard LLC.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/installer/windows"
TARGET=x86_64-pc-windows-gnu
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# Wintun 0.14.1, WireGuard LLC's signed build. The archive's SHA-256 is the one pinned by Mullvad
# (github.com/mullvad/mullvadvpn-app-binaries, wireguard/download-wintun.bat, commit 6233c7c3
# "Bump wintun to 0.14.1", which also checks the signer's thumbprint
# DF98E075A012ED8C86FBCF14854B8F9555CB3D45). The amd64 DLL's SHA-256 is the one Firezone pins
# (github.com/firezone/firezone, rust/windows-client/src-tauri/src/client/wintun_install.rs,
# commit 18cae062) and the hash of x86_64-pc-windows-msvc/wintun/wintun.dll in Mullvad's
# repository above (checked when this was written).
WINTUN_VERSION=0.14.1
WINTUN_URL="https://www.wintun.net/builds/wintun-$WINTUN_VERSION.zip"
WINTUN_ZIP_SHA256=07c256185d6ee3652e09fa55c0b673e2624b565e02c4b9091c79ca7d2f24ef51
WINTUN_DLL_SHA256=e5da8447dc2c320edc0fc52fa01885c103de8c118481f683643cacc3220dafce
WINTUN_DLL_IN_ZIP=wintun/bin/amd64/wintun.dll

die() { echo "build-msi.sh: $*" >&2; exit 1; }
say() { echo "build-msi.sh: $*" >&2; }

helper="" app="" profile=release wintun_zip="${WARREN_WINTUN_ZIP:-}" wintun_dll="" test_wintun=""
out="$TARGET_DIR/windows"
while [[ $# -gt 0 ]]; do
    case $1 in
        --helper | --app | --wintun-zip | --wintun-dll | --test-wintun | --out)
            [[ $# -ge 2 ]] || die "$1 needs a value"
            case $1 in
                --helper) helper=$2 ;;
                --app) app=$2 ;;
                --wintun-zip) wintun_zip=$2 ;;
                --wintun-dll) wintun_dll=$2 ;;
                --test-wintun) test_wintun=$2 ;;
                --out) out=$2 ;;
            esac
            shift 2
            ;;
        --debug) profile=debug; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
sources=0
for s in "$wintun_dll" "$test_wintun"; do [[ -z $s ]] || sources=$((sources + 1)); done
# --wintun-zip given explicitly alongside another source is an error; $WARREN_WINTUN_ZIP is not.
if [[ -n $wintun_zip && $sources -gt 0 && ${WARREN_WINTUN_ZIP:-} != "$wintun_zip" ]]; then
    die "give one of --wintun-zip, --wintun-dll, --test-wintun"
fi
[[ $sources -le 1 ]] || die "give one of --wintun-zip, --wintun-dll, --test-wintun"
[[ -z $wintun_dll && -z $test_wintun ]] || wintun_zip=""

for tool in wixl msibuild sha256sum; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool is missing (Debian packages wixl and msitools: sudo scripts/setup.sh)"
done

# The version: the workspace's, which MSI wants as numbers only.
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
    die "the workspace version '$version' is not X.Y.Z, which an MSI's ProductVersion must be"

helper=${helper:-$TARGET_DIR/$TARGET/$profile/warren-helper.exe}
app=${app:-$TARGET_DIR/$TARGET/$profile/warren-app.exe}
[[ -f $helper ]] || die "no warren-helper.exe at $helper (cargo build$([[ $profile == release ]] && echo " --release") --target $TARGET -p warren-helper)"
[[ -f $app ]] || die "no warren-app.exe at $app (cargo build$([[ $profile == release ]] && echo " --release") --target $TARGET -p warren-app)"
for exe in "$helper" "$app"; do
    [[ $(head -c 2 "$exe") == MZ ]] || die "$exe is not a Windows executable"
done

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# expect_sha256 FILE SUM WHAT — refuse FILE unless its SHA-256 is SUM.
expect_sha256() {
    local got
    got="$(sha256 "$1")"
    [[ $got == "$2" ]] || die "REFUSED $3 $1: its SHA-256 is $got, not the pinned $2 (Wintun $WINTUN_VERSION from $WINTUN_URL); nothing was built"
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/stage"
mkdir -p "$stage" "$out"

test_build=0
[[ $profile == debug ]] && test_build=1
if [[ -n $test_wintun ]]; then
    [[ -f $test_wintun ]] || die "--test-wintun: no such file: $test_wintun"
    [[ $(head -c 2 "$test_wintun") == MZ ]] || die "--test-wintun: $test_wintun is not a Windows DLL"
    say "TEST BUILD: $test_wintun as wintun.dll (not WireGuard LLC's; the MSI is not for release)"
    cp "$test_wintun" "$stage/wintun.dll"
    test_build=1
elif [[ -n $wintun_dll ]]; then
    [[ -f $wintun_dll ]] || die "--wintun-dll: no such file: $wintun_dll"
    expect_sha256 "$wintun_dll" "$WINTUN_DLL_SHA256" "wintun.dll"
    cp "$wintun_dll" "$stage/wintun.dll"
else
    if [[ -z $wintun_zip ]]; then
        wintun_zip="$TARGET_DIR/windows/wintun-$WINTUN_VERSION.zip"
        if [[ ! -f $wintun_zip ]]; then
            say "downloading $WINTUN_URL"
            mkdir -p "$(dirname "$wintun_zip")"
            curl -fsSL --max-time 60 -o "$wintun_zip.part" "$WINTUN_URL" || {
                rm -f "$wintun_zip.part"
                die "could not download $WINTUN_URL: download it where the network allows and pass --wintun-zip FILE (or WARREN_WINTUN_ZIP=FILE), or pass --wintun-dll with its bin/amd64/wintun.dll"
            }
            mv "$wintun_zip.part" "$wintun_zip"
        fi
    fi
    [[ -f $wintun_zip ]] || die "--wintun-zip: no such file: $wintun_zip"
    expect_sha256 "$wintun_zip" "$WINTUN_ZIP_SHA256" "the Wintun archive"
    command -v unzip >/dev/null 2>&1 || die "unzip is missing (sudo scripts/setup.sh)"
    unzip -p "$wintun_zip" "$WINTUN_DLL_IN_ZIP" >"$stage/wintun.dll" ||
        die "$wintun_zip has no $WINTUN_DLL_IN_ZIP"
    expect_sha256 "$stage/wintun.dll" "$WINTUN_DLL_SHA256" "the archive's $WINTUN_DLL_IN_ZIP in"
fi

cp "$helper" "$stage/warren-helper.exe"
cp "$app" "$stage/warren-app.exe"
cp "$ROOT/src-tauri/icons/icon.ico" "$stage/warren.ico"

if [[ $test_build == 1 ]]; then
    msi="$out/Warren-$version-x64-TEST-NOT-FOR-RELEASE.msi"
    description="Warren $version TEST BUILD, NOT FOR RELEASE ($([[ -n $test_wintun ]] && echo "wintun.dll is a test stand-in, not WireGuard LLC's" || echo "debug binaries"))"
else
    msi="$out/Warren-$version-x64.msi"
    description="Warren $version, WireGuard VPN client"
fi

# wixl resolves Source= against the current directory: run it in the staging directory.
(cd "$stage" && wixl --arch x64 -D "Version=$version" -D "Description=$description" \
    -o "$work/warren.msi" "$HERE/warren.wxs") || die "wixl failed on $HERE/warren.wxs"

# What wixl cannot say (see the header).
sddl="$(sed -n 's/^pub const ADMIN_ONLY_SDDL: &str = "\(.*\)";$/\1/p' "$ROOT/helper/src/sys/windows/acl.rs")"
[[ $sddl == D:P* ]] || die "cannot read ADMIN_ONLY_SDDL from helper/src/sys/windows/acl.rs"
# msidbCustomActionTypeExe + SourceFile (18), Continue (64: a failing rollback does not stop the
# rest of the rollback), Rollback (256), NoImpersonate (2048).
msibuild "$work/warren.msi" -q "UPDATE CustomAction SET Type = 2386 WHERE Action = 'WarrenHelperRollback'" ||
    die "msibuild: setting the rollback action's type failed"
{
    printf 'MsiLockPermissionsEx\tLockObject\tTable\tSDDL\tCondition\r\n'
    printf 's72\ts72\ts32\ts0\tS255\r\n'
    printf 'MsiLockPermissionsEx\tMsiLockPermissionsEx\r\n'
    printf 'DataDirAdminOnly\tDATADIR\tCreateFolder\t%s\t\r\n' "$sddl"
} >"$work/MsiLockPermissionsEx.idt"
msibuild "$work/warren.msi" -i "$work/MsiLockPermissionsEx.idt" ||
    die "msibuild: adding MsiLockPermissionsEx failed"
if [[ $test_build == 1 ]]; then
    msibuild "$work/warren.msi" -q "INSERT INTO Property (Property, Value) VALUES ('WARREN_TEST_BUILD', '1')" ||
        die "msibuild: marking the test build failed"
fi

mv "$work/warren.msi" "$msi"
say "built $msi ($(du -k "$msi" | cut -f1) KiB; wintun.dll $(sha256 "$stage/wintun.dll"))"
[[ $test_build == 0 ]] || say "NOT FOR RELEASE: $msi"
echo "$msi"
