"""Message bytes in PostgreSQL: stored once per content, chunked, refcounted.

A blob is keyed by the sha256 of its bytes, so a multi-recipient delivery, a COPY and
the same message delivered twice share one row; ``refcount`` counts the message rows
that refer to it and purge() deletes blobs at zero (with their chunks, by cascade).
The bytes are split into chunks of CHUNK octets: a large message is written and read
in bounded pieces and never approaches PostgreSQL's 1 GB limit on one value.

A blob's id is the messages' RFC 8474 EMAILID: ids come from a sequence and are never
reused, and the same id always names the same bytes (the hash decides).
"""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg

CHUNK = 1024 * 1024

# One round trip whatever the size: insert the blob (or add to the refcount of the one
# with the same bytes) and its chunks when it is new. ``xmax = 0`` is true for a row
# this statement inserted and false for one ON CONFLICT updated. A concurrent insert of
# the same bytes waits on the unique index until the first commits, then adds to it;
# a purge deleting that row first makes ON CONFLICT insert afresh.
_PUT = """
WITH b AS (
    INSERT INTO blobs (sha256, length, refcount, structure) VALUES ($1, $2, $3, $4)
    ON CONFLICT (sha256) DO UPDATE SET refcount = blobs.refcount + EXCLUDED.refcount
    RETURNING id, (xmax = 0) AS inserted
), c AS (
    INSERT INTO blob_chunks (blob_id, seq, data)
    SELECT b.id, s.seq - 1, s.data FROM b, unnest($5::bytea[]) WITH ORDINALITY AS s(data, seq)
    WHERE b.inserted
)
SELECT id FROM b
"""


def chunks(raw: bytes) -> list[bytes]:
    if len(raw) <= CHUNK:
        return [raw]
    return [raw[i:i + CHUNK] for i in range(0, len(raw), CHUNK)]


async def put(conn: asyncpg.Connection, raw: bytes, refs: int, structure: str | None) -> int:
    """Store ``raw`` (or share the stored copy), counting ``refs`` new references; its id."""
    digest = hashlib.sha256(raw).digest()
    return int(await conn.fetchval(_PUT, digest, len(raw), refs, structure, chunks(raw)))


async def read(conn: asyncpg.Connection, blob_ids: list[int]) -> dict[int, bytes]:
    """The bytes of those of ``blob_ids`` still stored (one query, chunks in order)."""
    rows = await conn.fetch("SELECT blob_id, data FROM blob_chunks WHERE blob_id = ANY($1::bigint[]) "
                            "ORDER BY blob_id, seq", blob_ids)
    parts: dict[int, list[bytes]] = {}
    for r in rows:
        parts.setdefault(r[0], []).append(r[1])
    return {bid: p[0] if len(p) == 1 else b"".join(p) for bid, p in parts.items()}


async def unref_messages(conn: asyncpg.Connection, where: str, *args: Any) -> None:
    """Take back the references of the message rows matching ``where`` (before deleting them)."""
    await conn.execute(
        f"UPDATE blobs SET refcount = blobs.refcount - d.n FROM "
        f"(SELECT blob_id, count(*) AS n FROM messages WHERE {where} GROUP BY blob_id) d "
        f"WHERE blobs.id = d.blob_id", *args)


async def purge(conn: asyncpg.Connection) -> tuple[int, int]:
    """Delete every blob no message refers to; (blobs removed, bytes freed)."""
    row = await conn.fetchrow(
        "WITH d AS (DELETE FROM blobs WHERE refcount <= 0 RETURNING length) "
        "SELECT count(*), coalesce(sum(length), 0) FROM d")
    return int(row[0]), int(row[1])

