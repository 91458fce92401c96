"""Metrics computed by a model: BERTScore (any local encoder), COMET (unbabel-comet with a user's
checkpoint), RAGAS-style faithfulness and answer relevance (a judge), and entity-level NER F1
(seqeval, no model). tasks/generation.py adds them to a generation task's samples
(add_model_scores); docs/metrics.md describes each one."""
