"""Audit events and session recordings: the emitter and searchable audit log (kept in the backend),
the session recorder, recording formats and recording stores.
"""
