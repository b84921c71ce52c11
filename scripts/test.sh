#!/usr/bin/env bash
# Installs everything the tests need (Debian peers and clients, PostgreSQL, a venv with the
# project and its test extras) and runs the suite twice:
#   1. the whole suite on the default SQLite store (the storage contract suite covers both
#      backends here: store_factory is parametrised over sqlite and postgresql);
#   2. the protocol suites (tests/server/**, the directories whose tests start in-process
#      servers) again with POSTROOM_TEST_STORE=postgresql: every in-process test server runs on
#      a database of a throwaway PostgreSQL cluster (tests/pgswitch.py).
# POSTROOM_TEST_REQUIRE_PG=1 in both: missing PostgreSQL binaries fail the run instead of skipping.
# Extra args go to pytest; with args, only pass 1 runs (with them) unless POSTROOM_TEST_STORE
# is set, which picks the backend for that one run, e.g.
#   POSTROOM_TEST_STORE=postgresql scripts/test.sh tests/server/imap -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || { apt-get install -y -qq python3-venv >/dev/null && python3 -m venv .venv; }
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
export POSTROOM_TEST_REQUIRE_PG=1
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
status=0
POSTROOM_TEST_STORE=sqlite .venv/bin/python -m pytest || status=$?
# One pytest per group: tests/server/smtp's modules import its conftest by name
# (`from conftest import ...`), and mailauth's and outbound's conftests put their own helper
# directories first on sys.path, so each runs in a process of its own.
pg_groups=(
  "tests/server/smtp"
  # The abuse defences whose state is in the store's database (rate limits, greylisting);
  # the scanners' tests deliver as smtp's do.
  "tests/server/abuse/test_ratelimit.py tests/server/abuse/test_screen.py tests/server/abuse/test_screen_greylist_pg.py"
  "tests/server/mailauth"
  "tests/server/outbound"
  "tests/server/http tests/server/imap tests/server/managesieve tests/server/pop3 tests/server/sieve"
  "tests/news tests/server/nntp"
  "tests/server/kerberos"
  # Web pages and app passwords on the PostgreSQL account attributes (the browser and fuzz runs are SQLite only).
  "tests/server/web/test_web_core.py tests/server/web/test_web_admin.py tests/server/web/test_web_user.py tests/server/web/test_web_totp.py tests/server/test_app_passwords.py"
)
for group in "${pg_groups[@]}"; do
  echo "== PostgreSQL store: $group"
  # shellcheck disable=SC2086  # a group is several paths
  POSTROOM_TEST_STORE=postgresql .venv/bin/python -m pytest -q $group || status=$?
done
exit "$status"
