"""Reconciliation: the run report built from a run's counts, rendered for people and tools."""
