"""Typed stores over the backend: authorities, users, roles, tokens and the audit log.

Each store owns a key prefix and a JSON codec; callers above never see keys or bytes.
"""
