import sys
from pathlib import Path

# tests/dnsfixture.py and the two-hosts harness of tests/server/outbound live outside this folder.
_TESTS = Path(__file__).resolve().parents[2]
for p in (_TESTS, _TESTS / "server" / "outbound"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from test_outbound_two_hosts import net  # noqa: E402,F401  (the two-hosts fixture, for test_mailauth_two_hosts)
