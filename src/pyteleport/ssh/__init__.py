"""SSH plumbing shared by the proxy and the client, over asyncssh.

relay, tunnel, tcprelay, pipe, target, agentaudit: sessions and channels relayed, the inner
connection carried on a channel, TCP and byte pipes, the client leg to a target sshd, the audited
agent socket a target uses.

Where asyncssh offers no public hook, one module each (``internals`` lists the private parts they
use and checks them at start): ``requests`` (global requests), ``certcheck`` (the certificate
behind a login), ``agentfwd`` (agent forwarding in memory), ``x11`` (X11 relayed),
``transport`` (one write per loop pass) and ``windows`` (channel windows that bound buffers: a
global patch, installed here when the package is first imported).
"""

from pyteleport.ssh.windows import install_window_hook

install_window_hook()
