"""Thin asyncio adapters that move bytes between sockets and router sessions, and nothing else."""
