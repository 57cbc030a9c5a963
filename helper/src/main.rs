//! The `warren-helper` binary: the daemon and admin CLI, all of it in the library (`lib.rs`).

fn main() -> std::process::ExitCode {
    warren_helper::helper_main()
}
