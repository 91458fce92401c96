"""Inference-time methods that change how a trained model is run (not its weights)."""
