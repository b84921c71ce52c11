"""One module per area of the web UI; each has ``setup(site)`` and is found by :func:`modules`.

Found by listing the package, so a page helper adds a module and nothing else
(docs/web-dev.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def modules() -> list[ModuleType]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            found.append(importlib.import_module(f"{__name__}.{info.name}"))
    return found
