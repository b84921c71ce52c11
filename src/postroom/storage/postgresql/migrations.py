"""The "store" component's schema migrations (applied by schema.apply at open()).

Appended, never edited (see schema.py). The layout follows the SQLite store's
(sqlite/schema.py), so that both answer the same queries the same way, except where
the message bytes live: in ``blobs``/``blob_chunks`` instead of segment files.
"""

from __future__ import annotations

COMPONENT = "store"

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema.
    """
    CREATE TABLE meta (key text PRIMARY KEY, value bigint NOT NULL);
    INSERT INTO meta VALUES ('last_uidvalidity', 0);
    CREATE TABLE domains (name text PRIMARY KEY);
    CREATE TABLE accounts (
        id bigserial PRIMARY KEY,
        address text NOT NULL UNIQUE,
        password_hash text NOT NULL,
        apop_secret text,
        created double precision NOT NULL,
        quota_storage bigint,
        quota_messages bigint,
        -- counts the account's metadata writes that changed something (IMAP NOTIFY)
        metadata_change bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE aliases (source text PRIMARY KEY, targets text[] NOT NULL);
    CREATE TABLE mailboxes (
        id bigserial PRIMARY KEY,
        account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name text NOT NULL,
        uidvalidity bigint NOT NULL,
        uidnext bigint NOT NULL DEFAULT 1,
        highestmodseq bigint NOT NULL DEFAULT 1,
        recent_uid bigint NOT NULL DEFAULT 1,
        special_use text,
        UNIQUE (account_id, name)
    );
    CREATE TABLE subscriptions (
        account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name text NOT NULL,
        PRIMARY KEY (account_id, name)
    );
    -- Message bytes, stored once per content (sha256) and shared by every message row
    -- that refers to them (multi-recipient delivery, COPY, the same mail delivered
    -- twice). refcount counts those rows; purge() deletes blobs at zero. The bytes are
    -- split into chunks of at most 1 MiB so that no single value approaches the 1 GB
    -- field limit and a large message is read and written in bounded pieces.
    CREATE TABLE blobs (
        id bigserial PRIMARY KEY,
        sha256 bytea NOT NULL UNIQUE,
        length bigint NOT NULL,
        refcount bigint NOT NULL,
        structure text
    );
    CREATE INDEX blobs_unused ON blobs (id) WHERE refcount <= 0;
    CREATE TABLE blob_chunks (
        blob_id bigint NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
        seq int NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (blob_id, seq)
    );
    CREATE TABLE messages (
        mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid bigint NOT NULL,
        modseq bigint NOT NULL,
        flags text NOT NULL DEFAULT '',
        internaldate bigint NOT NULL,
        tzoffset int NOT NULL DEFAULT 0,
        size bigint NOT NULL,
        blob_id bigint NOT NULL REFERENCES blobs(id),
        savedate bigint,
        PRIMARY KEY (mailbox_id, uid)
    );
    CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
    CREATE INDEX messages_blob ON messages (blob_id);
    -- Expunged UIDs with the MODSEQ of their removal (QRESYNC VANISHED, NOOP updates);
    -- a row of UID 0 holds the log's floor (see prune_expunge_log).
    CREATE TABLE expunged (
        mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid bigint NOT NULL,
        modseq bigint NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    );
    CREATE TABLE sieve_scripts (
        id bigserial PRIMARY KEY,
        account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name text NOT NULL,
        content text NOT NULL,
        active boolean NOT NULL DEFAULT false,
        updated double precision NOT NULL,
        UNIQUE (account_id, name)
    );
    CREATE UNIQUE INDEX sieve_scripts_active ON sieve_scripts (account_id) WHERE active;
    CREATE TABLE sieve_tracking (
        account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind text NOT NULL,
        key text NOT NULL,
        recorded double precision NOT NULL,
        expires double precision NOT NULL,
        PRIMARY KEY (account_id, kind, key)
    );
    CREATE INDEX sieve_tracking_expires ON sieve_tracking (expires);
    CREATE TABLE metadata (
        account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        mailbox_id bigint REFERENCES mailboxes(id) ON DELETE CASCADE,
        name text NOT NULL,
        value bytea NOT NULL
    );
    CREATE UNIQUE INDEX metadata_key ON metadata (account_id, coalesce(mailbox_id, 0), name);
    CREATE INDEX metadata_mailbox ON metadata (mailbox_id);
    CREATE TABLE metadata_log (
        id bigserial PRIMARY KEY,
        account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        change bigint NOT NULL,
        mailbox_id bigint REFERENCES mailboxes(id) ON DELETE CASCADE,
        name text NOT NULL
    );
    CREATE INDEX metadata_log_change ON metadata_log (account_id, change);
    CREATE INDEX metadata_log_mailbox ON metadata_log (mailbox_id);
    """,
    # 2: web administration (SQLite migration 8): an account's admin and disabled flags, the
    # epoch its web sessions carry, its TOTP secret; app passwords and API tokens kept by
    # the SHA-256 of their random secret (unique: a login finds one by an index probe).
    """
    ALTER TABLE accounts ADD COLUMN admin boolean NOT NULL DEFAULT false;
    ALTER TABLE accounts ADD COLUMN disabled boolean NOT NULL DEFAULT false;
    ALTER TABLE accounts ADD COLUMN session_epoch bigint NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN totp_secret text;
    CREATE TABLE credentials (
        id bigserial PRIMARY KEY,
        account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind text NOT NULL,
        name text NOT NULL,
        digest bytea NOT NULL UNIQUE,
        created double precision NOT NULL,
        last_used double precision,
        UNIQUE (account_id, kind, name)
    );
    """,
    # 3: web security follow-up (SQLite migration 9): the time step of the last TOTP code
    # accepted for the account (a code is accepted once, RFC 6238 §5.2, by a compare-and-set
    # UPDATE; 0: none used yet), and the web sessions logged out, by the SHA-256 of their
    # cookie's nonce, until the cookie would have expired anyway.
    """
    ALTER TABLE accounts ADD COLUMN totp_last_step bigint NOT NULL DEFAULT 0;
    CREATE TABLE web_logouts (
        digest bytea PRIMARY KEY,
        account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        expires double precision NOT NULL
    );
    CREATE INDEX web_logouts_expires ON web_logouts (expires);
    CREATE INDEX web_logouts_account ON web_logouts (account_id);
    """,
)
