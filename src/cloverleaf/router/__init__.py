"""The router: realms, sessions, broker and dealer. Only this layer knows routing."""
