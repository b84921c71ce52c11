"""``krb``: a throwaway MIT Kerberos realm and a Postroom runtime using it, once per test module.

Skipped when MIT Kerberos (krb5-kdc, krb5-admin-server, krb5-user) or the ``gssapi`` Python
package is missing: scripts/install-test-deps.sh and ``pip install -e '.[test]'`` bring both.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: kdc.py
import kdc

try:
    import gssapi  # noqa: F401
except ImportError:
    # Every module here imports the gssapi client at the top: without the package (pip install
    # -e '.[test]' brings it) they are not collected, rather than failing to import.
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="module")
def krb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    pytest.importorskip("gssapi")
    pytest.importorskip("postroom.server")
    missing = kdc.available()
    if missing:
        pytest.skip(missing)
    from krb_harness import KerberosHarness

    with closing(KerberosHarness(tmp_path_factory.mktemp("krb"))) as h:
        yield h
