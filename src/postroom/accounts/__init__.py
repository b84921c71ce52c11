"""Accounts' attributes for web administration and app passwords (issue #21).

What the web UI, the JSON API and the CLI call; none of them touches the store's account
columns directly. Every function takes the :class:`~postroom.storage.api.Store` (web
handlers: ``ctx.store``) and is async.

- :mod:`.attributes`: ``admin``, ``disabled``, the TOTP secret, the session epoch, password
  change (``set_admin``, ``set_disabled``, ``set_totp_secret``, ``change_password``,
  ``log_out_everywhere``, ``get``).
- :mod:`.app_passwords`: per-device passwords for mail clients (``create``, ``list_for``,
  ``revoke``; the authenticator calls ``AppPasswordChecker.check``).
- :mod:`.tokens`: admins' API tokens ``prt_...`` (``create``, ``list_for``, ``revoke``,
  ``resolve``).
- :mod:`.credentials`: how both kinds of secret are made and hashed.

The fields themselves are on :class:`~postroom.storage.models.Account` (``admin``,
``disabled``, ``session_epoch``, ``totp_secret``), so a session check is one
``store.get_account_by_id``. docs/web.md, "Accounts: admins, app passwords", is the
user's side of this.
"""
