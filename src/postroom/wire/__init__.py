"""I/O-free byte tools shared by every protocol: dot-stuffing, SASL, xtext, the command gate.

Nothing in this package imports asyncio or touches a socket; the protocol
``server.py`` modules feed it bytes and act on what it returns.
"""
