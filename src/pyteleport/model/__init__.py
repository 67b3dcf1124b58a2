"""Frozen values of the domain (users, roles, tokens, authorities, identities, audit events) and
their codecs: JSON for storage and the wire, Teleport's YAML resource shape for ``tctl``.

Imports nothing above ``errors``/``clock``; every other layer speaks in these types.
"""
