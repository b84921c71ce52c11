#!/usr/bin/env bash
# Sets up Postroom on this machine and starts it on an embedded default:
# demo domain example.test, user demo@example.test (password "demo"), a self-signed
# certificate, every listener on 127.0.0.1 at its standard port + 10000.
# Re-running reuses the existing ./demo directory. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${POSTROOM_DEMO_DIR:-demo}
OFFSET=${POSTROOM_PORT_OFFSET:-10000}
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || { sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo;
    $sudo apt-get install -y -qq python3-venv >/dev/null && python3 -m venv .venv; }
fi
.venv/bin/pip install -q --disable-pip-version-check -e .
PR=".venv/bin/postroom"
if [ ! -f "$DIR/postroom.toml" ]; then
  $PR init "$DIR" --domain example.test --port-offset "$OFFSET"
  $PR -c "$DIR/postroom.toml" user add demo@example.test --password demo
fi
cat <<MSG

Postroom is starting with $DIR/postroom.toml (user demo@example.test, password demo).
Connect with any mail client to 127.0.0.1 (self-signed certificate: accept it):
$(grep -A1 '^\[listeners' "$DIR/postroom.toml" | awk '/listeners/{n=$0} /address/{gsub(/\[listeners\.|\]/,"",n); print "  " n ": " $3}')
For example:  python3 -c "import poplib; p=poplib.POP3('127.0.0.1', $((110+OFFSET))); p.stls(); p.user('demo@example.test'); p.pass_('demo'); print(p.stat())"

MSG
exec $PR -c "$DIR/postroom.toml" serve
