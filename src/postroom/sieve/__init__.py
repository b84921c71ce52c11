"""Sieve (RFC 5228 and extensions): a pure engine, plus ManageSieve and delivery glue.

The shared types are in :mod:`postroom.sieve.api`.
"""
