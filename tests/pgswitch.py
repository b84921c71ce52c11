"""``POSTROOM_TEST_STORE=postgresql``: the in-process test servers on the PostgreSQL store.

Every test server started inside the pytest process reads its configuration through
``postroom.config.load`` → ``from_dict`` (tests/threaded_runtime.py and the harnesses
under tests/server/). Under the switch, tests/conftest.py wraps ``from_dict`` so that a
configuration that does not name a backend gets ``[storage] backend = "postgresql"``
and the URL of a database in the session's throwaway cluster (tests/pgcluster.py).

One database per data directory, created on first use: a reload, an in-process CLI
call or a second runtime on the same configuration reaches the same mail, exactly as
they would share the directory on SQLite. A configuration that names its backend is
left alone (it is testing that backend on purpose), and so is a malformed one (the
test expects ``from_dict``'s own error). Production code has no test hook: the rewrite
happens on the dictionary before ``from_dict`` sees it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "POSTROOM_TEST_STORE"
BACKENDS = ("sqlite", "postgresql")
MARKER = "sqlite_only"


def selected_backend() -> str:
    """The backend the switch asks for ("sqlite" when unset); ValueError on a typo, so a
    misspelt value cannot silently run the suite on SQLite a second time."""
    value = os.environ.get(ENV, "").strip() or "sqlite"
    if value not in BACKENDS:
        raise ValueError(f"{ENV}={value!r}: must be one of {', '.join(BACKENDS)}")
    return value


def enabled() -> bool:
    return selected_backend() == "postgresql"


def data_dir_of(data: dict[str, Any], path: Path) -> Path | None:
    """The data directory ``from_dict`` will use for this table (None when malformed)."""
    storage = data.get("storage", {})
    if not isinstance(storage, dict):
        return None
    sub = storage.get("path", "data")
    if not isinstance(sub, str):
        return None
    q = Path(sub)
    return Path(os.path.realpath(q if q.is_absolute() else Path(path).parent.resolve() / q))


def rewrite(data: dict[str, Any], path: Path, url_for: Callable[[Path], str]) -> dict[str, Any]:
    """``data`` with ``[storage]`` on PostgreSQL (a new dict; ``data`` is not modified).

    Unchanged when the table already names a backend, or when ``[storage]`` is malformed.
    """
    if not isinstance(data, dict):
        return data
    storage = data.get("storage", {})
    if not isinstance(storage, dict) or "backend" in storage:
        return data
    data_dir = data_dir_of(data, path)
    if data_dir is None:
        return data
    return {**data, "storage": {**storage, "backend": "postgresql", "url": url_for(data_dir)}}


def load_as_subprocess(path: Path) -> Any:
    """``postroom.config.load(path)`` as a ``postroom`` subprocess reads it: the switch never
    reaches subprocesses, so a test reading what its subprocess servers stored must see the
    same backend they do (tests/server/outbound/test_outbound_two_hosts.py's Host.inbox)."""
    import tomllib

    from postroom import config

    from_dict = config.from_dict
    while hasattr(from_dict, "__wrapped__"):  # functools.wraps in Switch.install
        from_dict = from_dict.__wrapped__
    return from_dict(tomllib.loads(Path(path).read_text(encoding="utf-8")), Path(path))


def database_name(data_dir: Path) -> str:
    """A stable, valid PostgreSQL identifier for one data directory (63 bytes at most)."""
    return "srv_" + hashlib.sha256(str(data_dir).encode()).hexdigest()[:32]


class Switch:
    """The wrapper around ``postroom.config.from_dict`` and the databases it created.

    Installed once, before collection (test modules import ``from_dict`` by name at
    import time); the cluster is attached by a session fixture when the first test runs.
    """

    def __init__(self) -> None:
        self.cluster: Any = None  # tests/pgcluster.PgCluster once the session fixture ran
        self._lock = threading.Lock()  # from_dict is called from server threads too
        self._urls: dict[Path, str] = {}
        self._created: list[str] = []  # databases not yet dropped
        self._original: Callable[..., Any] | None = None

    def url_for(self, data_dir: Path) -> str:
        with self._lock:
            url = self._urls.get(data_dir)
            if url is None:
                if self.cluster is None:
                    raise RuntimeError(f"{ENV}=postgresql: a configuration was loaded before the session's "
                                       "PostgreSQL cluster started (at import or collection time?)")
                name = database_name(data_dir)
                url = self._urls[data_dir] = str(self.cluster.create_database(name))
                self._created.append(name)
            return url

    def install(self) -> None:
        from postroom import config

        if self._original is not None:
            return
        original = self._original = config.from_dict

        @functools.wraps(original)
        def from_dict(data: dict[str, Any], path: Path) -> Any:
            return original(rewrite(data, path, self.url_for), path)

        config.from_dict = from_dict  # type: ignore[assignment]  # load() looks it up here at call time

    def uninstall(self) -> None:
        from postroom import config

        if self._original is not None:
            config.from_dict = self._original  # type: ignore[assignment]
            self._original = None

    def drop_unused(self) -> list[str]:
        """Drop the databases created so far that nobody is connected to; returns their names.

        Called when a test module ends (its servers are stopped by then): keeps the cluster
        small over a whole run. A database still in use (a server a test leaked, or one
        shared across modules) is kept and tried again at the next module's end.
        """
        with self._lock:
            names = list(self._created)
        if not names or self.cluster is None:
            return []
        dropped = asyncio.run(_drop_idle(self.cluster.admin_url, names))
        with self._lock:
            self._created = [n for n in self._created if n not in dropped]
            for d, url in list(self._urls.items()):
                if url.rsplit("/", 1)[-1] in dropped:
                    del self._urls[d]
        return dropped


async def _drop_idle(admin_url: str, names: list[str]) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        busy = {r["datname"] for r in await conn.fetch(
            "SELECT DISTINCT datname FROM pg_stat_activity WHERE datname = ANY($1::text[])", names)}
        dropped = []
        for name in names:
            if name in busy:
                continue
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            except asyncpg.ObjectInUseError:
                continue  # connected to since the query above
            dropped.append(name)
        return dropped
    finally:
        await conn.close()
