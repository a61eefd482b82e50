"""The node: configuration, command line, and the process that runs a router."""
