"""Connections to PostgreSQL for every component (store, outbound queue, shared state).

The password is read at connect time (``PgSettings.password``), so a rotated secret
is picked up by the next connection without a reload. :func:`is_unavailable` tells
the failures that mean "the database is not there right now" (lost connection,
restart, failover, unreachable host) from real errors: callers turn the former into
:class:`postroom.errors.StoreUnavailable`, which every protocol answers with a
temporary error (451, ``NO [UNAVAILABLE]``, ``-ERR [SYS/TEMP]``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from ...config import PgSettings

# Server settings every connection gets. synchronous_commit is the server default, but
# a cluster tuned with synchronous_commit = off would acknowledge mail that a crash loses:
# the store's durability contract (api.py) needs it on.
SERVER_SETTINGS = {"synchronous_commit": "on", "application_name": "postroom"}

# How long to wait for a connection before calling the database unavailable: long enough
# for a busy server, short enough that an SMTP client gets its 451 before it gives up.
CONNECT_TIMEOUT = 10.0

# SQLSTATE classes and codes that mean the server is going away, starting, or gone:
# 08 connection exception, 57P01 admin_shutdown, 57P02 crash_shutdown,
# 57P03 cannot_connect_now, 53300 too_many_connections, 25006 read_only_sql_transaction
# (a failover left us on a standby that has not been promoted).
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "53300", "25006"}


def _connect_args(pg: PgSettings) -> dict[str, Any]:
    args: dict[str, Any] = {"dsn": pg.url, "server_settings": dict(SERVER_SETTINGS),
                            "timeout": CONNECT_TIMEOUT}
    password = pg.password()
    if password is not None:
        args["password"] = password
    return args


async def connect(pg: PgSettings) -> asyncpg.Connection:
    """One connection outside any pool (listeners, advisory locks held for a session)."""
    return await asyncpg.connect(**_connect_args(pg))


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset for users that leave no session state behind (see create_pool)."""


async def create_pool(pg: PgSettings, *, min_size: int = 1, max_size: int | None = None,
                      reset_session: bool = True) -> asyncpg.Pool:
    """A pool of up to ``max_size`` (default ``pg.pool_size``) connections.

    The password is read when the pool is created; asyncpg reuses these arguments for
    the connections it opens later (including after the server restarted).

    By default asyncpg resets a connection's session when it goes back to the pool (advisory
    locks, LISTENs, settings: one more round trip each time). ``reset_session=False`` skips
    that for users whose work leaves no session state: the store, whose advisory locks and
    LISTEN have connections of their own and whose settings are transaction-local. An open
    transaction is still rolled back either way.
    """
    size = max_size if max_size is not None else pg.pool_size
    extra: dict[str, Any] = {} if reset_session else {"reset": _keep_session}
    pool = await asyncpg.create_pool(min_size=min(min_size, size), max_size=size, **extra,
                                     # A connection idle this long is closed, so a pool sized
                                     # for a peak does not hold backends for ever.
                                     max_inactive_connection_lifetime=300.0,
                                     **_connect_args(pg))
    assert pool is not None
    return pool


# What a call on a pooled connection raises when the database is away or the connection broke:
# besides the server's errors and socket errors, asyncpg's InternalClientError ("cannot switch
# to state …; another operation is in progress"), raised when the pool resets a connection
# that broke in the middle of an operation (seen during PostgreSQL restarts).
DB_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


@asynccontextmanager
async def acquire(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """``pool.acquire()``, which never loses the pool's slot to a dead connection.

    asyncpg (0.31) returns a connection to the pool only through its own clean-up when the
    connection closed while checked out; when the server ended the session itself
    (``pg_terminate_backend``, a shutdown: a FATAL message before the socket closes) that
    clean-up does not run, the release finds the connection closed and does nothing, and
    the slot is lost: after ``pool_size`` such losses every caller waits for ever. Terminating
    a closed connection before the release runs the clean-up, which frees the slot (the pool
    opens a new connection for the next caller).
    """
    async with pool.acquire() as conn:
        try:
            yield conn
        finally:
            if conn.is_closed():
                conn.terminate()


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be used right now (retry later)."""
    if isinstance(exc, (asyncpg.exceptions.ConnectionDoesNotExistError,
                        asyncpg.exceptions.ConnectionFailureError,
                        asyncpg.exceptions.CannotConnectNowError,
                        asyncpg.exceptions.TooManyConnectionsError,
                        asyncpg.exceptions.InterfaceError, asyncpg.InternalClientError)):
        # InterfaceError covers "connection is closed" and "pool is closing"; a misuse
        # of the API would also be one, but those are bugs found by the tests.
        # InternalClientError: asyncpg's state machine after a connection broke mid-operation.
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state.startswith("08") or state in _UNAVAILABLE_STATES
    # OSError: host unreachable, name resolution failed, connection refused while restarting.
    return isinstance(exc, (OSError, TimeoutError))
