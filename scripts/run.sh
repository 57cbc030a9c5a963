#!/usr/bin/env bash
# scripts/run.sh — THE main-job command: `sudo scripts/run.sh`.
#
# On a fresh Debian 12 machine: installs what Warren needs (scripts/setup.sh), builds the helper in
# release mode, and starts the local demo (`warren-helper demo`): a Warren peer in a network
# namespace, a tunnel to it from this machine, a ping through it and `wg show`. The tunnel stays up
# until ctrl-c, then everything the demo added is removed.
#
# The demo adds one veth pair and one network namespace (`warren-demo`) on this machine, with
# addresses only from 198.18.0.0/15 and fd00::/8; it changes no existing route, DNS or firewall.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WARREN_SAY_PREFIX="[run]"
cd "$WARREN_ROOT"
[[ $EUID -eq 0 ]] || die "the demo creates a network namespace and a TUN device: run as root (sudo $0)"
"$WARREN_ROOT/scripts/setup.sh"
warren_find_cargo
say "building warren-helper (release)"
as_builder cargo build --release -p warren-helper
say "starting the demo; press ctrl-c to stop it and remove everything it added"
exec "$WARREN_ROOT/target/release/warren-helper" demo "$@"
