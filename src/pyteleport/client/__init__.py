"""The library behind tsh: the ``~/.tsh`` profile, password login, the user's ssh-agent, and
(later) ssh through the proxy and playback. Talks to the proxy through ``api.client`` only.
"""
