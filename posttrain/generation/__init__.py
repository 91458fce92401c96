"""Data work that makes files: sampling from models, scoring, iterating on-policy rounds.

Every job has one shape (jobs.py): read rows -> process one batch -> append the batch's output
atomically as a chunk -> manifest. Sampling (sample.py) and scoring plug a batch function into it,
so resume after a crash, sharding over processes, progress and failure counting are written once.
"""
