"""Keys and certificate authorities: SSH keys, OpenSSH certificates signed by a CA, the TLS CA,
password hashes and TOTP. Owns ``cryptography``, ``argon2`` and asyncssh's key handling; does no I/O.
"""
