"""SSH plumbing shared by the proxy and the node: listeners, forwarding, recording hooks."""
