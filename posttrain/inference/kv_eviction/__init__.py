"""KV-cache eviction during chunked prefill: StreamingLLM, H2O and Locret on transformers' DynamicCache.

needle.py: the generated long-context retrieval task; policies.py: which cache units each method
keeps; prefill.py: chunked prefill + eviction + greedy answer; locret.py: retaining heads and
their training; cli.py: `posttrain kv eval` / `posttrain kv train-heads`.
"""
