"""Operators that change a model's architecture (block expansion, vocabulary extension, Control
LLM branches, LLaMA-Adapter V2): pure functions on modules and tensors, with thin commands in
surgery/cli.py (`posttrain surgery ...`)."""
