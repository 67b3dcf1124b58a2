"""pyteleport: Teleport's SSH access plane, in Python.

Layers, top to bottom (lower layers never import higher ones; siblings on one line do not import
each other; ``make check`` enforces this with import-linter):

    cli/                        teleport, tctl, tsh
    service/                    config file -> validated config; process assembly
    auth/ | proxy/ | node/ | client/
    ssh/ | web/                 asyncssh glue; HTTPS plumbing
    api/ | events/ | storage/   wire contract; audit and recordings; typed stores
    backend/                    key/value store with leases and watches
    crypto/ | policy/           keys and CAs; pure access decisions
    model/                      frozen values and their JSON codec
    errors, clock
"""

__version__ = "0.1.0"
TELEPORT_VERSION = "17.0.0"
"""The Teleport release whose user-visible behaviour this project matches."""
