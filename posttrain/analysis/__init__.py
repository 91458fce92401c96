"""Looking inside a trained model: MLP neurons read through the LM head (neurons.py)."""
