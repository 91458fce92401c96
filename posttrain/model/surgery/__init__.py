"""Operators that change a model's architecture, as pure functions on modules and tensors: block
expansion (LLaMA Pro), vocabulary extension and Learned Embedding Propagation, Control LLM
branches, LLaMA-Adapter V2, and the adapter kinds (kinds.py, wrapper.py) that model/adapters.py
attaches and loads like peft's. They sit in the model layer because loading a model or an adapter
directory needs them; the `posttrain surgery` commands around them are in posttrain/surgery/."""
