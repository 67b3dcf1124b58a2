"""The wire contract between services and their clients: pydantic models of every request and
response (``wire``), the HTTPS clients that speak them (``client``), and the access-point protocols
each consumer of the auth service reads (``access``).
"""
