"""What the pages and the API share: validation and store calls, one module per area.

No aiohttp responses, templates or HTML here: a service takes the request (for
``ctx_of``/``viewer``) or the context and plain values, raises a
:class:`~postroom.web.errors.WebError` for bad input, and returns plain data once the
store has committed (docs/web-dev.md, "Services").
"""
