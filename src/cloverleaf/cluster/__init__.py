"""Cluster back end on NATS (work in progress).

Core NATS subjects carry node-to-node traffic (events, invocations, results); a JetStream KV
bucket holds the routing state shared by the nodes (registrations, subscription interest per
node, sessions, node leases). Pure helpers live in modules that import neither asyncio nor nats
(:mod:`cloverleaf.cluster.keys`, :mod:`cloverleaf.cluster.ids`) so they can be fuzzed in isolation.
"""
