//! Build script: Tauri's (capabilities, context, icons), plus a placeholder page when the UI has
//! not been built, so `cargo check`/`clippy --workspace` work on a fresh clone without Node. The
//! real UI is built by `npm --prefix ui run build` (tests/gui/run.sh does it first); the
//! placeholder says so in the window and in a build warning.

use std::path::Path;

const PLACEHOLDER: &str = "<!doctype html><meta charset=\"utf-8\"><title>Warren</title>\
<p>This build of Warren has no user interface: run <code>npm --prefix ui ci &amp;&amp; \
npm --prefix ui run build</code>, then build the app again.</p>\n";

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist");
    if !dist.join("index.html").exists() {
        println!(
            "cargo:warning=ui/dist is missing: embedding a placeholder page \
             (build the UI with `npm --prefix ui ci && npm --prefix ui run build`)"
        );
        if let Err(e) = std::fs::create_dir_all(&dist)
            .and_then(|()| std::fs::write(dist.join("index.html"), PLACEHOLDER))
        {
            println!("cargo:warning=failed to write the placeholder UI: {e}");
        }
    }
    tauri_build::build()
}
