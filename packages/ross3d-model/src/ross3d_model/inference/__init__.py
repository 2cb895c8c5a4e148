"""Inference: KV-cache greedy decoding, generation per benchmark, and `predict` (batched,
prefix reuse, torchrun-split, resumable).
"""
