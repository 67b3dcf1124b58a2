"""The library behind tsh: the ``~/.tsh`` profile, password login, the user's ssh-agent, ssh
through the proxy, and session recordings (listing, playback as text, JSON or in real time on a
terminal). Talks to the proxy through ``api.client`` only.
"""
