"""The proxy service: the HTTPS web API for tsh and browsers (``webapi``), and the SSH listener
on 3023 (``sshserver``) with the recording forwarder (``outer``, ``forwarder``, ``recording``).
Reaches the auth service only through the access-point protocol of ``api.access``.
"""
