#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for developers: the same one the tests start (tests/pgcluster.py).
#
#   scripts/pg-cluster.sh start DIR   # initdb on first use, start on 127.0.0.1; prints the admin URL
#   scripts/pg-cluster.sh stop DIR    # stop it (DIR keeps the data; rm -r DIR to throw it away)
#
# The server listens on loopback only, on an ephemeral port chosen at the first start and kept in
# DIR/port, with trust authentication, and runs as the `postgres` user when started as root
# (PostgreSQL refuses to run as root). Point a config at it with, for example:
#   [storage]
#   backend = "postgresql"
#   url = "postgresql://postroom_admin@127.0.0.1:PORT/postgres"
# Debian's `postgresql` package provides the server (scripts/install-test-deps.sh installs it).
set -euo pipefail
if [ $# -ne 2 ] || { [ "$1" != start ] && [ "$1" != stop ]; }; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$root/.venv/bin/python"
[ -x "$python" ] || python=python3
mkdir -p "$2"
if [ "$1" = start ] && [ -f "$2/port" ] && [ -f "$2/pgdata/postmaster.pid" ] &&
   pg_isready -q -h 127.0.0.1 -p "$(cat "$2/port")" 2>/dev/null; then
  echo "postgresql://postroom_admin@127.0.0.1:$(cat "$2/port")/postgres"  # already running
  exit 0
fi
if ! "$python" "$root/tests/pgcluster.py" "$1" "$2" 2>"$2/pg-cluster.err"; then
  echo "pg-cluster: $1 failed; see $2/server.log" >&2
  tail -n 20 "$2/server.log" "$2/pg-cluster.err" >&2 2>/dev/null || true
  exit 1
fi
