"""What the model is fed: the tokenizer, the collator that turns shard examples into
batches, and the per-clip caches it reads.
"""
