"""Benchmarks of the recording proxy against OpenSSH, measured side by side in one run.

``python -m bench`` (``make bench``) starts everything it measures on 127.0.0.1: a cluster in
``proxy`` recording mode, a second one in ``node`` mode (the proxy is then a byte pipe), a target
sshd and an OpenSSH jump host, and an ssh-agent per cluster. It prints one table of figures
(median, min and max of several runs) with the ratios and targets of issue #5.

``lab`` starts and stops the processes; ``procfs`` reads CPU and memory from /proc; ``transfer``,
``setuptime``, ``sessionrate`` drive the real OpenSSH client; ``interactive`` is the asyncssh
client that holds many interactive sessions open; ``report`` renders the table; ``suite`` runs
the whole thing in order.
"""
