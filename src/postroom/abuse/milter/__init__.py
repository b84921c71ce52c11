"""The milter client (Sendmail milter protocol v6, as Postfix speaks it): ``proto`` (codec),
``headers`` (the header block a milter edits), ``client`` (asyncio), ``check`` (the guard's
:class:`~postroom.abuse.guard.Check`), ``settings`` (``[smtp] milters``)."""
