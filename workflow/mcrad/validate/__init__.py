"""Validate (stage 2): the locked bundles score every external centre.

scoring (locked-bundle predictions, outcomes joined), metrics (per model x centre x stage, pooled, paired tests),
curves (the tables the report draws), stage (what `mcrad validate` runs).
"""
