"""A Postroom with extra config sections, for the content-scanner tests (ClamAV, attachments).

It reuses tests/server/smtp's server harness (loaded from its file under another module
name, so that it does not clash with this folder's own conftest modules) and appends the
given TOML to its configuration before the server starts.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from postroom.config import load

_TESTS = Path(__file__).resolve().parents[2]
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))  # tests/clamdpeer.py


def smtp_harness() -> ModuleType:
    name = "postroom_tests_smtp_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _TESTS / "server" / "smtp" / "conftest.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def start_server(tmp_path_factory: pytest.TempPathFactory, extra_toml: str):  # type: ignore[no-untyped-def]
    """A started SmtpServer (tests/server/smtp/conftest.py) with ``extra_toml`` in its config."""
    root = tmp_path_factory.mktemp("abuse")
    srv = smtp_harness().SmtpServer(root)
    with open(root / "postroom.toml", "a", encoding="utf-8") as f:
        f.write("\n" + extra_toml + "\n")
    srv.cfg = load(root / "postroom.toml")
    return srv.start()
