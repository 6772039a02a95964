"""Embeddings (`llm.embed.v1`): model resolution, the local model with micro-batching, the service.

Import the submodules directly; this package imports nothing so providers can use `result`.
"""
