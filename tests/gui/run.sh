#!/usr/bin/env bash
# tests/gui/run.sh — the desktop app's tests (src-tauri/ crate warren-app, ui/).
#
# Usage: tests/gui/run.sh [STAGE...]     all stages, or the named ones, in this order:
#   ui          npm ci, typecheck, Vitest (UI logic and views in jsdom), vite build → ui/dist
#   rust        cargo clippy -p warren-app --all-targets -D warnings, without and with the feature
#               fake-helper (which the example fake_helper needs); cargo test -p warren-app
#               (controller against the fake helper, stores, tray/notification models, and the
#               check that ui/src/generated/bindings.ts matches the Rust types)
#   keyring     the real keyring round trip: kernel keyutils (under `keyctl session -`) and
#               Secret Service (private D-Bus session + throwaway unlocked gnome-keyring)
#   screenshot  build the app, start it under Xvfb (1) with no helper running and (2) against the
#               fake helper (src-tauri/examples/fake_helper.rs, a connected tunnel), screenshot
#               each to $WARREN_GUI_SCREENSHOT (default $CARGO_TARGET_DIR/gui-screenshot.png) and
#               …-connected.png, and check the window rendered (not a blank or one-colour screen)
#   tray        (root, for a private mount namespace) the real app under Xvfb without a tray —
#               the tray library hidden (/dev/null bind-mounted over it), or no StatusNotifier
#               host on the session bus — started plainly and with --autostart: no panic, the
#               window shown, the reason logged, closing the window quits; and with a stand-in
#               host (src-tauri/examples/sni_watcher.rs): the icon registers, --autostart stays
#               in the tray, closing the window hides it (tests/gui/tray.sh)
#   e2e         end to end (tests/gui/e2e.sh, root): build the app and the helper, then drive the
#               real app with tauri-driver + WebKitWebDriver under Xvfb against a real
#               `warren-helper daemon` whose tunnel lives in a network namespace, with a
#               wireguard-go peer in another: the helper-not-running screen, an invalid .conf
#               (line-precise error, nothing changed), import, connect (handshake age, rx/tx
#               growing under a ping burst), disconnect (namespace as before), the helper going
#               away. Screenshots and the log: $CARGO_TARGET_DIR/e2e-screenshots/. Without root or
#               a tool it says NOT RUN loudly; with CI=true that is a failure.
#        tests/gui/run.sh --list
# Needs (Debian): libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
#   xvfb xauth x11-utils imagemagick dbus keyutils gnome-keyring; Node.js 20 and npm; for tray also
#   xdotool, util-linux (unshare) and a C compiler (build-essential; libx11-dev comes with GTK's);
#   for e2e also webkit2gtk-driver xdotool wireguard-go wireguard-tools iproute2 iputils-ping jq and
#   `cargo install tauri-driver --locked` (scripts/setup.sh installs all of them).
# The last line printed is "N passed, N failed" (", N not run" if any). Exit status 0 if none
# failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/gui"
ALL=(ui rust keyring screenshot tray e2e)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$TARGET"
# The keyring and screenshot stages move HOME; keep cargo and rustup where they are.
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"

if [[ ${1:-} == --list ]]; then
    printf '%s\n' "${ALL[@]}"
    exit 0
fi
SELECTED=("$@")
[[ ${#SELECTED[@]} -eq 0 ]] && SELECTED=("${ALL[@]}")
for s in "${SELECTED[@]}"; do
    [[ " ${ALL[*]} " == *" $s "* ]] || { echo "unknown stage '$s' (see --list)" >&2; exit 2; }
done

# The app and the fake helper (src-tauri/examples/fake_helper.rs, feature fake-helper), in one
# command that every stage which runs the app uses: a build of the app alone resolves its
# dependencies' features without the example's dev-dependencies and rebuilds most of them. So the app
# these stages run has the fake helper compiled in, unused; release builds and the .deb do not.
BUILD_APP=(cargo build --manifest-path "$ROOT/Cargo.toml" -p warren-app --features fake-helper
    --bin warren-app --example fake_helper)

passed=0 failed=0 notrun=0
declare -a FAILED=()

# check NAME CMD... — one test: run it, report PASS/FAIL with its output on failure.
check() {
    local name=$1 log rc
    shift
    log="$(mktemp)"
    echo "=== $name"
    "$@" >"$log" 2>&1
    rc=$?
    if [[ $rc -eq 0 ]]; then
        passed=$((passed + 1))
        tail -n 3 "$log" | sed 's/^/    /'
        echo "PASS $name"
    else
        failed=$((failed + 1))
        FAILED+=("$name")
        tail -n 60 "$log" | sed 's/^/    /'
        echo "FAIL $name (exit $rc)"
    fi
    rm -f "$log"
    return $rc
}

need() {
    local missing=() c
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    echo "missing commands: ${missing[*]} (see the package list at the top of $0)" >&2
    return 1
}

stage_ui() {
    check "ui: tools" need node npm || return
    check "ui: npm ci" npm --prefix "$ROOT/ui" ci --no-audit --no-fund || return
    check "ui: typecheck" npm --prefix "$ROOT/ui" run typecheck
    check "ui: vitest" npm --prefix "$ROOT/ui" test
    check "ui: build" npm --prefix "$ROOT/ui" run build
}

stage_rust() {
    if ! [[ -f $ROOT/ui/dist/index.html ]] || grep -q 'warren: placeholder page' "$ROOT/ui/dist/index.html"; then
        echo "note: ui/dist has no built UI (run the ui stage first for a real one); the app's build warns and embeds a placeholder page"
    fi
    check "rust: clippy" cargo clippy --manifest-path "$ROOT/Cargo.toml" -p warren-app --all-targets -- -D warnings
    check "rust: clippy with the fake helper" cargo clippy --manifest-path "$ROOT/Cargo.toml" -p warren-app \
        --all-targets --features fake-helper -- -D warnings
    check "rust: tests" cargo test --manifest-path "$ROOT/Cargo.toml" -p warren-app
}

stage_keyring() {
    check "keyring: tools" need keyctl dbus-run-session gnome-keyring-daemon dbus-send || return
    check "keyring: keyutils round trip" env WARREN_KEYRING_TEST=keyutils \
        keyctl session - cargo test --manifest-path "$ROOT/Cargo.toml" -p warren-app --lib \
        -- --ignored --exact store::secrets::tests::keyring_round_trip
    check "keyring: Secret Service round trip" env WARREN_KEYRING_TEST=secret-service \
        "$HERE/keyring-secret-service.sh" cargo test --manifest-path "$ROOT/Cargo.toml" -p warren-app \
        --lib -- --ignored --exact store::secrets::tests::keyring_round_trip
}

# screenshot_renders OUT [FAKE_HELPER] — the screenshot must show a rendered window: many
# colours, not a blank or black screen.
screenshot_renders() {
    local out=$1 fake=${2:-} colours
    if [[ -n $fake ]]; then
        WARREN_SCREENSHOT_FAKE_HELPER="$fake" WARREN_SCREENSHOT_WAIT=12 \
            "$HERE/screenshot.sh" "$out" "$TARGET/debug/warren-app" || return
    else
        "$HERE/screenshot.sh" "$out" "$TARGET/debug/warren-app" || return
    fi
    colours="$(convert "$out" -format %k info:)"
    echo "distinct colours in $out: $colours"
    [[ $colours -gt 50 ]]
}

stage_screenshot() {
    check "screenshot: tools" need xvfb-run xwininfo import convert dbus-run-session || return
    check "screenshot: build the app and the fake helper" "${BUILD_APP[@]}" || return
    local out="${WARREN_GUI_SCREENSHOT:-$TARGET/gui-screenshot.png}"
    check "screenshot: the helper-missing screen renders ($out)" screenshot_renders "$out"
    local connected="${out%.png}-connected.png"
    check "screenshot: the connection view renders ($connected)" \
        screenshot_renders "$connected" "$TARGET/debug/examples/fake_helper"
}

stage_tray() {
    check "tray: build the app and the stand-in StatusNotifier watcher" "${BUILD_APP[@]}" \
        --example sni_watcher || return
    local case flag rc
    for case in hidden-library no-host host; do
        for flag in "" --autostart; do
            echo "=== tray: $case${flag:+ $flag}"
            rc=0
            "$HERE/tray.sh" "$case" ${flag:+"$flag"} 2>&1 | sed 's/^/    /'
            rc=${PIPESTATUS[0]}
            if [[ $rc == 0 ]]; then
                passed=$((passed + 1))
                echo "PASS tray: $case${flag:+ $flag}"
            elif [[ $rc == 77 ]]; then
                notrun=$((notrun + 1))
                echo "NOT RUN tray: $case${flag:+ $flag} (see above)"
            else
                failed=$((failed + 1))
                FAILED+=("tray: $case${flag:+ $flag}")
                echo "FAIL tray: $case${flag:+ $flag} (exit $rc)"
            fi
        done
    done
}

stage_e2e() {
    local rc=0 dir="${WARREN_E2E_SCREENSHOTS:-$TARGET/e2e-screenshots}"
    echo "=== e2e: can this machine run it?"
    "$HERE/e2e.sh" --check || rc=$?
    if [[ $rc == 77 ]]; then
        notrun=$((notrun + 1))
        echo "NOT RUN e2e (see above; sudo tests/gui/run.sh e2e)"
        return
    elif [[ $rc != 0 ]]; then
        failed=$((failed + 1))
        FAILED+=("e2e: prerequisites")
        echo "FAIL e2e: prerequisites (exit $rc)"
        return
    fi
    # The same build command as the screenshot stage (the same features), so after it this is
    # a no-op; the helper on its own, as the other stages build it.
    check "e2e: build the app" "${BUILD_APP[@]}" || return
    check "e2e: build the helper" cargo build --manifest-path "$ROOT/Cargo.toml" -p warren-helper || return
    # Streamed, not summarised: each step's line is the useful part. Kept next to the screenshots.
    mkdir -p "$dir"
    echo "=== e2e: the app against a real helper in a network namespace (tests/gui/e2e.sh)"
    rc=0
    WARREN_E2E_SCREENSHOTS="$dir" "$HERE/e2e.sh" 2>&1 | tee "$dir/e2e.log" | sed 's/^/    /'
    rc=${PIPESTATUS[0]}
    if [[ $rc == 0 ]]; then
        passed=$((passed + 1))
        echo "PASS e2e (screenshots and log in $dir)"
    else
        failed=$((failed + 1))
        FAILED+=("e2e")
        echo "FAIL e2e (exit $rc; log in $dir/e2e.log)"
    fi
}

for s in "${SELECTED[@]}"; do
    "stage_$s"
done
echo
if [[ $failed -gt 0 ]]; then
    echo "failed: ${FAILED[*]}"
fi
echo "$passed passed, $failed failed$([[ $notrun -gt 0 ]] && echo ", $notrun not run")"
[[ $failed -eq 0 ]]
