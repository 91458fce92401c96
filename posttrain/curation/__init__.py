"""Data curation: decontamination, dedup, CHES and filters before training (`posttrain curate STEP`)."""
