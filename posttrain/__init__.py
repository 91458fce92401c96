"""posttrain: post-training toolkit for open-weight causal LMs (Llama-3 first)."""

__version__ = "0.1.0"
