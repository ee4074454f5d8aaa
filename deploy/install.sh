#!/bin/sh
# Install dbmaint for the systemd unit, as root, from a checkout of the repository (Debian 12 or later).
#
#   deploy/install.sh            # the venv, /etc/dbmaint, /var/lib/dbmaint, the unit (not enabled)
#
# Safe to run again (an upgrade): an existing config.toml or environment file is never overwritten. It
# starts, stops and enables nothing: `systemctl enable --now dbmaint` is yours to run once the config is
# edited. The venv is built from the system Python (/usr/bin/python3), never from whatever python3 comes
# first on PATH: a pyenv or conda interpreter under root's 0700 home cannot be run by the service user.
#
# The paths can be moved (the tests install into a scratch directory):
#   DBMAINT_PREFIX (/opt/dbmaint), DBMAINT_ETC (/etc/dbmaint), DBMAINT_STATE (/var/lib/dbmaint),
#   DBMAINT_UNIT_DIR (/etc/systemd/system; empty: no unit), DBMAINT_BIN_LINK (/usr/local/bin/dbmaint;
#   empty: no link), DBMAINT_USER (postgres), PYTHON (/usr/bin/python3).
set -eu

checkout=$(cd "$(dirname "$0")/.." && pwd)
prefix=${DBMAINT_PREFIX:-/opt/dbmaint}
etc=${DBMAINT_ETC:-/etc/dbmaint}
state=${DBMAINT_STATE:-/var/lib/dbmaint}
unit_dir=${DBMAINT_UNIT_DIR-/etc/systemd/system}
bin_link=${DBMAINT_BIN_LINK-/usr/local/bin/dbmaint}
user=${DBMAINT_USER:-postgres}
python=${PYTHON:-/usr/bin/python3}

say() { echo "install: $*" >&2; }
fail() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it creates $prefix, $etc and $state)"
id "$user" >/dev/null 2>&1 || fail "no OS user $user (install postgresql first, or set DBMAINT_USER)"
group=$(id -gn "$user")
[ -x "$python" ] || fail "$python not found (apt-get install python3)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "$python is older than 3.11"
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    say "installing python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

[ -x "$prefix/bin/python" ] || "$python" -m venv "$prefix"
say "installing dbmaint into $prefix"
"$prefix/bin/pip" install -q --disable-pip-version-check "$checkout"

install -d -m 0750 -o root -g "$group" "$etc"
[ -e "$etc/config.toml" ] || install -m 0640 -o root -g "$group" "$checkout/deploy/config.toml" "$etc/config.toml"
[ -e "$etc/environment" ] || install -m 0640 -o root -g "$group" /dev/null "$etc/environment"
# StateDirectory= makes it when the service starts; made now so that the CLI works before that.
install -d -m 0750 -o "$user" -g "$group" "$state"
if [ -n "$unit_dir" ]; then
    install -m 0644 "$checkout/deploy/dbmaint.service" "$unit_dir/dbmaint.service"
    if [ "$unit_dir" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
fi
[ -z "$bin_link" ] || ln -sf "$prefix/bin/dbmaint" "$bin_link"

# The service runs as $user: it must be able to run what was installed and read the config.
runuser -u "$user" -- "$prefix/bin/dbmaint" --version >/dev/null \
    || fail "$user cannot run $prefix/bin/dbmaint (is a directory above it closed to other users?)"
runuser -u "$user" -- test -r "$etc/config.toml" || fail "$user cannot read $etc/config.toml"
runuser -u "$user" -- test -w "$state" || fail "$user cannot write $state"
say "done: edit $etc/config.toml, then: systemctl enable --now dbmaint"
