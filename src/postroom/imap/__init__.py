"""IMAP4rev1 (RFC 3501) with IDLE, UIDPLUS, MOVE, LITERAL+, NAMESPACE, UNSELECT.

Layout (see docs/imap.md): ``tokenizer`` frames commands and literals (sans-I/O),
``parser/`` turns a framed command into typed arguments, ``commands`` is the one
command table, ``dispatch`` checks states and maps errors, ``handlers/`` return
replies, ``selected`` keeps the seq↔UID view, ``server`` is the asyncio glue.
"""
