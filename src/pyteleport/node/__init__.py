"""Node service: our own SSH server for hosts where sshd can be replaced (a later issue)."""
