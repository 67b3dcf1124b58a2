"""HTTPS plumbing shared by the auth API and the proxy's web API: a uvicorn server inside the
process's event loop with TLS (and optional client certificates), and the error kind -> status map.
"""
