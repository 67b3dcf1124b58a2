"""The command-line tools ``teleport``, ``tctl`` and ``tsh``: parse argv (click), call the library,
render (rich). Each ``main(argv) -> int`` turns a TeleportError into one ``ERROR:`` line.
"""
