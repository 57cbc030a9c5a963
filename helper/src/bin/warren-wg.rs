//! The `warren-wg` binary: wireguard-go's command line over Warren's data plane, all of it in
//! the library (`wg/mod.rs`).

fn main() -> std::process::ExitCode {
    warren_helper::wg_main()
}
