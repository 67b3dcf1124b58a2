"""The proxy service: the HTTPS web API for tsh and browsers (``webapi``), and (later) the SSH
listener on 3023 with the recording forwarder. Reaches the auth service only through the
access-point protocol of ``api.access``.
"""
