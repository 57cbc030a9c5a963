#!/bin/sh
# Removes Warren's helper from macOS (installer/README.md). Run as root: sudo sh uninstall.sh
# [--purge]. Stops the daemon (it takes its tunnels down and undoes its journal), removes what the
# .pkg installed and forgets the package receipts. --purge also removes /etc/warren (system
# tunnels), /var/lib/warren, /var/log/warren and the group `warren`.
set -eu

LABEL=net.warren.helper

[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo sh $0" >&2; exit 1; }

if /bin/launchctl print "system/$LABEL" >/dev/null 2>&1; then
    /bin/launchctl bootout "system/$LABEL"
fi
/bin/launchctl disable "system/$LABEL" 2>/dev/null || true
if [ -x /usr/local/bin/warren-helper ]; then
    /usr/local/bin/warren-helper recover || echo "warren: some changes could not be undone (see above)" >&2
fi
/bin/rm -f "/Library/LaunchDaemons/$LABEL.plist" /usr/local/bin/warren-helper /var/log/warren-helper.log
/bin/rm -rf /var/run/warren /Applications/Warren.app
for pkg in net.warren.helper.pkg net.warren.app.pkg; do
    /usr/sbin/pkgutil --forget "$pkg" >/dev/null 2>&1 || true
done
if [ "${1:-}" = --purge ]; then
    /bin/rm -rf /etc/warren /var/lib/warren /var/log/warren
    /usr/sbin/dseditgroup -o delete warren 2>/dev/null || true
fi
echo "Warren removed"
