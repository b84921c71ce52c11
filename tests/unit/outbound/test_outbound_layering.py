"""The outbound sans-I/O parts (reply parsing, DSN building, settings) import no I/O modules."""

import ast
from pathlib import Path

OUTBOUND = Path(__file__).resolve().parents[3] / "src" / "postroom" / "outbound"
FORBIDDEN = {"asyncio", "socket", "ssl", "sqlite3", "subprocess", "selectors", "dns"}


def test_pure_modules_do_not_import_io():
    for name in ("reply.py", "dsn.py", "settings.py", "api.py"):
        tree = ast.parse((OUTBOUND / name).read_text())
        mods = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods.add(node.module.split(".")[0])
        assert not mods & FORBIDDEN, (name, mods & FORBIDDEN)
