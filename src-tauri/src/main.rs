//! The `warren-app` binary: everything lives in the library ([`warren_app::run`]).

// No console window next to the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    warren_app::run();
}
