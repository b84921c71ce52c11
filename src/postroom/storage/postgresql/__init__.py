"""The PostgreSQL store: several Postroom nodes on one database (docs/storage.md).

connect.py opens pools and classifies connection failures, schema.py applies the
numbered migrations of each component (store, queue, state), and the store itself is
split by concern: store.py (accounts, mailboxes …), messages.py, blobs.py, notify.py.
"""
