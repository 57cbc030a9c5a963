//! Build script: Tauri's (capabilities, context, icons), plus a placeholder page when the UI has
//! not been built, so `cargo check`/`clippy --workspace` work on a fresh clone without Node. The
//! real UI is built by `npm --prefix ui run build` (tests/gui/run.sh and the scripts' release
//! builds do it first); the placeholder says so in the window.
//!
//! When the placeholder is used it warns (a build warning), louder for a release build, unless
//! `WARREN_UI_PLACEHOLDER=1` says the placeholder is intended: scripts/test.sh sets it for its
//! clippy and test stages, which may run before the UI is built and never show the window. A
//! placeholder left in `ui/dist` by an earlier build is recognised by its marker and counts as
//! missing, so a later build is not silently given it.

use std::path::Path;

/// Marks the placeholder page, so a later build knows `ui/dist` still holds no real UI.
macro_rules! placeholder_marker {
    () => {
        "<!-- warren: placeholder page, not the built UI -->"
    };
}

const PLACEHOLDER: &str = concat!(
    "<!doctype html>",
    placeholder_marker!(),
    "<meta charset=\"utf-8\"><title>Warren</title>",
    "<p>This build of Warren has no user interface: run <code>npm --prefix ui ci &amp;&amp; ",
    "npm --prefix ui run build</code>, then build the app again.</p>\n"
);

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist");
    let index = dist.join("index.html");
    println!("cargo:rerun-if-changed={}", index.display());
    println!("cargo:rerun-if-env-changed=WARREN_UI_PLACEHOLDER");
    let page = std::fs::read_to_string(&index).ok();
    let built = page
        .as_deref()
        .is_some_and(|page| !page.contains(placeholder_marker!()));
    if !built {
        let intended = std::env::var("WARREN_UI_PLACEHOLDER").is_ok_and(|v| v == "1");
        if std::env::var("PROFILE").is_ok_and(|p| p == "release") {
            println!(
                "cargo:warning=ui/dist has no built UI: this RELEASE build of warren-app has no user \
                 interface, only a placeholder page. Build the UI first (`npm --prefix ui ci && \
                 npm --prefix ui run build`, or use scripts/run.sh / installer/linux/build-deb.sh)"
            );
        } else if !intended {
            println!(
                "cargo:warning=ui/dist has no built UI: embedding a placeholder page \
                 (build the UI with `npm --prefix ui ci && npm --prefix ui run build`)"
            );
        }
        // Written only when different: a new mtime would make every build run this again.
        if page.as_deref() != Some(PLACEHOLDER) {
            if let Err(e) =
                std::fs::create_dir_all(&dist).and_then(|()| std::fs::write(&index, PLACEHOLDER))
            {
                println!("cargo:warning=failed to write the placeholder UI: {e}");
            }
        }
    }
    tauri_build::build()
}
