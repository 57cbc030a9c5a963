#!/bin/sh
# build-pkg.sh — Warren's macOS installer (.pkg). Runs on macOS only (pkgbuild, productbuild,
# codesign, notarytool are Apple tools), except --stage-only, which runs anywhere and which
# tests/installer/run.sh (check service-files) runs on Linux. See installer/README.md.
#
# Usage:
#   installer/macos/build-pkg.sh --helper PATH --version X.Y.Z [--app PATH/Warren.app]
#       [--sign-app "Developer ID Application: NAME (TEAM)"]
#       [--sign-installer "Developer ID Installer: NAME (TEAM)"]
#       [--notarize KEYCHAIN_PROFILE] [--out DIR]
#
#   --helper   the warren-helper binary: a universal one from
#              `lipo -create -output warren-helper target/{aarch64,x86_64}-apple-darwin/release/warren-helper`
#   --app      the app bundle from `npx tauri build --bundles app` (optional: helper-only .pkg without it)
#   --sign-*   sign the binaries (hardened runtime, secure timestamp) and the .pkg; both needed to notarize
#   --notarize submit to Apple's notary service with `xcrun notarytool` (a profile made with
#              `xcrun notarytool store-credentials`), wait, and staple the ticket
#   --stage-only DIR  stop before the Apple tools: DIR/root is the helper's exact payload (modes
#              as installed), DIR/scripts the .pkg's scripts, DIR/distribution.xml the filled-in
#              distribution (with --app: DIR/approot/Warren.app). No signing, no .pkg.
#
# What the .pkg installs (component net.warren.helper.pkg, scripts in installer/macos/scripts):
#   /usr/local/bin/warren-helper                          0755 root:wheel
#   /Library/LaunchDaemons/net.warren.helper.plist        0644 root:wheel
#   /Applications/Warren.app                              (component net.warren.app.pkg, with --app)
# postinstall creates the group warren (adds the console user), /var/lib/warren, /var/log/warren,
# /etc/warren/tunnels, and bootstraps the daemon. Removal: installer/macos/uninstall.sh.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
helper="" version="" app="" sign_app="" sign_installer="" notary_profile="" out="$PWD" stage_only=""

die() { echo "build-pkg.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --helper) helper=$2; shift 2 ;;
        --version) version=$2; shift 2 ;;
        --app) app=$2; shift 2 ;;
        --sign-app) sign_app=$2; shift 2 ;;
        --sign-installer) sign_installer=$2; shift 2 ;;
        --notarize) notary_profile=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --stage-only) stage_only=$2; shift 2 ;;
        *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
[ -n "$stage_only" ] || [ "$(uname -s)" = Darwin ] || die "needs macOS (pkgbuild, productbuild); --stage-only runs anywhere"
if [ -z "$helper" ] || [ ! -x "$helper" ]; then die "--helper: not an executable: '$helper'"; fi
[ -n "$version" ] || die "--version is required"
[ -z "$app" ] || [ -d "$app" ] || die "--app: not a directory: '$app'"
[ -z "$notary_profile" ] || [ -n "$sign_installer" ] || die "--notarize needs --sign-installer"

if [ -n "$stage_only" ]; then
    [ ! -e "$stage_only" ] || die "--stage-only: $stage_only exists already"
    mkdir -p "$stage_only"
    work=$(cd "$stage_only" && pwd)
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/root/usr/local/bin" "$work/root/Library/LaunchDaemons" "$work/pkgs" "$out"

# 1. The helper's payload.
install -m 0755 "$helper" "$work/root/usr/local/bin/warren-helper"
install -m 0644 "$here/net.warren.helper.plist" "$work/root/Library/LaunchDaemons/net.warren.helper.plist"
if [ -n "$stage_only" ]; then
    cp -R "$here/scripts" "$work/scripts"
    if [ -n "$app" ]; then
        mkdir -p "$work/approot"
        cp -R "$app" "$work/approot/Warren.app"
        app_line='<line choice="net.warren.app.pkg"/>'
        app_choice="<choice id=\"net.warren.app.pkg\" visible=\"false\"><pkg-ref id=\"net.warren.app.pkg\"/></choice><pkg-ref id=\"net.warren.app.pkg\" version=\"$version\" onConclusion=\"none\">warren-app.pkg</pkg-ref>"
    else
        app_line="" app_choice=""
    fi
    sed -e "s/@VERSION@/$version/g" -e "s|<!--APP_CHOICE_LINE-->|$app_line|" \
        -e "s|<!--APP_CHOICE-->|$app_choice|" "$here/distribution.xml" >"$work/distribution.xml"
    rmdir "$work/pkgs"
    echo "staged in $work (root/, scripts/, distribution.xml); on a Mac: pkgbuild, productbuild, codesign, notarytool, stapler"
    exit 0
fi
plutil -lint "$work/root/Library/LaunchDaemons/net.warren.helper.plist"
if [ -n "$sign_app" ]; then
    codesign --force --options runtime --timestamp --identifier net.warren.helper \
        --sign "$sign_app" "$work/root/usr/local/bin/warren-helper"
fi

# 2. The helper's component package; --ownership recommended makes the payload root:wheel.
pkgbuild --root "$work/root" --scripts "$here/scripts" --identifier net.warren.helper.pkg \
    --version "$version" --install-location / --ownership recommended \
    "$work/pkgs/warren-helper.pkg"

# 3. The app's component package, not relocatable (Installer must not "update" a copy elsewhere).
app_line="" app_choice=""
if [ -n "$app" ]; then
    if [ -n "$sign_app" ]; then
        codesign --force --deep --options runtime --timestamp --sign "$sign_app" "$app"
    fi
    mkdir -p "$work/approot"
    cp -R "$app" "$work/approot/Warren.app"
    pkgbuild --analyze --root "$work/approot" "$work/app-components.plist"
    plutil -replace 0.BundleIsRelocatable -bool NO "$work/app-components.plist"
    pkgbuild --root "$work/approot" --component-plist "$work/app-components.plist" \
        --identifier net.warren.app.pkg --version "$version" --install-location /Applications \
        "$work/pkgs/warren-app.pkg"
    app_line='<line choice="net.warren.app.pkg"/>'
    app_choice="<choice id=\"net.warren.app.pkg\" visible=\"false\"><pkg-ref id=\"net.warren.app.pkg\"/></choice><pkg-ref id=\"net.warren.app.pkg\" version=\"$version\" onConclusion=\"none\">warren-app.pkg</pkg-ref>"
fi

# 4. The product archive.
sed -e "s/@VERSION@/$version/g" -e "s|<!--APP_CHOICE_LINE-->|$app_line|" \
    -e "s|<!--APP_CHOICE-->|$app_choice|" "$here/distribution.xml" >"$work/distribution.xml"
product="$out/Warren-$version.pkg"
if [ -n "$sign_installer" ]; then
    productbuild --distribution "$work/distribution.xml" --package-path "$work/pkgs" \
        --sign "$sign_installer" --timestamp "$product"
else
    productbuild --distribution "$work/distribution.xml" --package-path "$work/pkgs" "$product"
fi

# 5. Notarization and stapling.
if [ -n "$notary_profile" ]; then
    xcrun notarytool submit "$product" --keychain-profile "$notary_profile" --wait
    xcrun stapler staple "$product"
fi
echo "built $product"
