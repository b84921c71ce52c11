"""Sans-I/O cores stay free of I/O: GUIDE principle 1, checked rather than hoped for."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "postroom"
FORBIDDEN = {"asyncio", "socket", "ssl", "sqlite3", "subprocess", "selectors"}
# Not engine code: the glue that runs the Sieve engine at delivery (on a worker thread, asking
# the store through the event loop) and the admin CLI live beside it in sieve/ (issue #15).
# Every other module of the package, the engine, is still checked.
GLUE = {"sieve/delivery.py", "sieve/host.py", "sieve/cli.py"}


def _imports(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module.split(".")[0])
    return mods


def test_sans_io_packages_do_not_import_io() -> None:
    files = [p for d in ("wire", "mime", "sieve") for p in (SRC / d).rglob("*.py")
             if str(p.relative_to(SRC)) not in GLUE]
    files += [p for p in SRC.rglob("proto.py")] + [p for p in SRC.rglob("proto/*.py")]
    assert files
    bad = {str(p.relative_to(SRC)): sorted(_imports(p) & FORBIDDEN) for p in files if _imports(p) & FORBIDDEN}
    assert not bad, bad
