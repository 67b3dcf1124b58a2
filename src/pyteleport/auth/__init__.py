"""The auth service: certificate authorities, users, roles, tokens and logins (``server``), the
one authorization wrapper every remote caller goes through (``authz``), and the HTTPS endpoints
of the auth API (``http``). Talks down to storage, events, crypto and policy; never to the proxy.
"""
