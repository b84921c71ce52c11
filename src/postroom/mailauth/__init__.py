"""Mail authentication: DKIM signing and verification, SPF, DMARC, ARC, Authentication-Results.

The checks are glue around the ecosystem's implementations (dkimpy for DKIM and ARC,
pyspf for SPF, publicsuffixlist for DMARC's organizational domain); every DNS lookup
goes through :mod:`postroom.resolver`. See docs/mailauth.md.
"""
