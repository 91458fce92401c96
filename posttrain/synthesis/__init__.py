"""Data synthesis: the seed papers' recipes for making training data (`posttrain synth METHOD`)."""
