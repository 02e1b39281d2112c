"""Inference: continuous batching across NPCs, KV-cache reuse, sampling, streaming."""
