"""Numbered schema migrations for the SQLite backend.

``PRAGMA user_version`` holds the number of migrations applied. A migration is
appended, never edited: an upgrade runs the missing ones in order inside one
transaction, so a server upgrade never leaves a half-migrated store.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta VALUES ('last_uidvalidity', 0);
    CREATE TABLE domains(name TEXT PRIMARY KEY);
    CREATE TABLE accounts(
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        apop_secret TEXT,
        created REAL NOT NULL
    );
    CREATE TABLE aliases(source TEXT PRIMARY KEY, targets TEXT NOT NULL);
    CREATE TABLE mailboxes(
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uidnext INTEGER NOT NULL DEFAULT 1,
        highestmodseq INTEGER NOT NULL DEFAULT 1,
        recent_uid INTEGER NOT NULL DEFAULT 1,
        special_use TEXT,
        UNIQUE(account_id, name)
    );
    CREATE TABLE subscriptions(
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        PRIMARY KEY(account_id, name)
    ) WITHOUT ROWID;
    -- Message bytes live in segment files; one row per stored copy of bytes, shared
    -- by every mailbox entry that refers to it (multi-recipient delivery, COPY).
    CREATE TABLE blobs(
        id INTEGER PRIMARY KEY,
        segment TEXT NOT NULL,
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        refcount INTEGER NOT NULL,
        structure TEXT
    );
    CREATE INDEX blobs_segment ON blobs(segment);
    CREATE TABLE messages(
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        flags TEXT NOT NULL DEFAULT '',
        internaldate INTEGER NOT NULL,
        tzoffset INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL,
        blob_id INTEGER NOT NULL REFERENCES blobs(id),
        PRIMARY KEY(mailbox_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
    -- Expunged UIDs with the MODSEQ of their removal (QRESYNC VANISHED, NOOP updates).
    CREATE TABLE expunged(
        mailbox_id INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY(mailbox_id, uid)
    ) WITHOUT ROWID;
    """,
    # 2: per-account quota (RFC 9208 STORAGE in octets, MESSAGE in messages); NULL = no limit.
    # Usage is not kept as counters: it is summed from ``messages`` when asked (see
    # SqliteStore.get_quota), so no write path has to maintain it and nothing can drift.
    """
    ALTER TABLE accounts ADD COLUMN quota_storage INTEGER;
    ALTER TABLE accounts ADD COLUMN quota_messages INTEGER;
    """,
    # 3: RFC 8514 SAVEDATE, the moment (Unix seconds) a message was saved into its current
    # mailbox: set by delivery, APPEND, COPY and MOVE. Messages stored before this migration
    # keep NULL (not known), which FETCH SAVEDATE answers as NIL (RFC 8514 §4.2).
    """
    ALTER TABLE messages ADD COLUMN savedate INTEGER;
    """,
    # 4: sieve scripts (RFC 5804): per account, text as sent (UTF-8), at most one active. The
    # partial unique index both enforces "one active" and makes delivery's lookup of the
    # active script one index probe.
    """
    CREATE TABLE sieve_scripts(
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        content TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 0,
        updated REAL NOT NULL,
        UNIQUE(account_id, name)
    );
    CREATE UNIQUE INDEX sieve_scripts_active ON sieve_scripts(account_id) WHERE active = 1;
    """,
    # 5: sieve vacation and duplicate tracking (RFC 5230 §4.2, RFC 7352): one row per (account,
    # kind, key), with when it was recorded and when it may be forgotten. Rows past
    # ``expires`` mean nothing and are pruned as the account's rows are written.
    """
    CREATE TABLE sieve_tracking(
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        recorded REAL NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY(account_id, kind, key)
    ) WITHOUT ROWID;
    CREATE INDEX sieve_tracking_expires ON sieve_tracking(expires);
    """,
    # 6: metadata (RFC 5464): IMAP METADATA entries of an account, on a mailbox or (mailbox_id
    # NULL) on the server. Names are stored lower-case (entry names are case-insensitive);
    # values are bytes (binary-safe). Keyed by mailbox id, so RENAME keeps a mailbox's
    # entries and deleting the mailbox or the account deletes them (the cascades).
    """
    CREATE TABLE metadata(
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        mailbox_id INTEGER REFERENCES mailboxes(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value BLOB NOT NULL
    );
    CREATE UNIQUE INDEX metadata_key ON metadata(account_id, ifnull(mailbox_id, 0), name);
    CREATE INDEX metadata_mailbox ON metadata(mailbox_id);
    """,
    # 7: metadata changes for IMAP NOTIFY (RFC 5465 §5.6, §5.7): accounts.metadata_change counts
    # the account's metadata writes that changed something (it is in the account watch's
    # fingerprint, so a write from any process wakes NOTIFY sessions); metadata_log names the
    # entries each such write changed, so that a session reads what changed after the number
    # it last saw. Only the last 1000 writes of an account are kept; a mailbox's rows go with it.
    """
    ALTER TABLE accounts ADD COLUMN metadata_change INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE metadata_log(
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        change INTEGER NOT NULL,
        mailbox_id INTEGER REFERENCES mailboxes(id) ON DELETE CASCADE,
        name TEXT NOT NULL
    );
    CREATE INDEX metadata_log_change ON metadata_log(account_id, change);
    CREATE INDEX metadata_log_mailbox ON metadata_log(mailbox_id);
    """,
    # 8: web administration (postroom.accounts, docs/web.md): an account's admin and disabled
    # flags, the epoch its web sessions carry, its TOTP secret; app passwords and API tokens
    # in ``credentials``, kept by the SHA-256 of their random secret (unique: a login finds
    # its credential by one index probe), with when each was made and last used.
    """
    ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN totp_secret TEXT;
    CREATE TABLE credentials(
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        digest BLOB NOT NULL UNIQUE,
        created REAL NOT NULL,
        last_used REAL,
        UNIQUE(account_id, kind, name)
    );
    """,
    # 9: web security follow-up of issue #21. accounts.totp_last_step: the time step (RFC 6238
    # T) of the last TOTP code accepted for the account, so that a code is accepted once
    # (§5.2): a web login or change takes a code only if its step is greater, by a
    # compare-and-set UPDATE (postroom.web.auth); 0: none used yet. web_logouts: the web
    # sessions logged out, by the SHA-256 of their cookie's nonce, until the cookie would
    # have expired anyway, so that a copy of a logged-out cookie is refused on every node.
    """
    ALTER TABLE accounts ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE web_logouts(
        digest BLOB PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        expires REAL NOT NULL
    );
    CREATE INDEX web_logouts_expires ON web_logouts(expires);
    CREATE INDEX web_logouts_account ON web_logouts(account_id);
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; return the version now in force."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(f"store schema version {version} is newer than this Postroom "
                           f"({len(MIGRATIONS)}); upgrade Postroom")
    if version == len(MIGRATIONS):
        return version
    conn.execute("BEGIN IMMEDIATE")
    try:
        for i in range(version, len(MIGRATIONS)):
            for stmt in _statements(MIGRATIONS[i]):
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT implicitly; split so the whole upgrade is one transaction.
    out, cur = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        cur.append(line)
        if line.rstrip().endswith(";") and sqlite3.complete_statement("\n".join(cur)):
            out.append("\n".join(cur))
            cur = []
    if "".join(cur).strip():
        out.append("\n".join(cur))
    return out
