"""Process wiring: config file, services started in one process, identities on disk."""
