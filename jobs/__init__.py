"""Scheduled job definitions: APScheduler wiring only; the jobs call the pipeline."""
