"""Readers of Zendesk Chat and Zendesk Sell exports into typed frames.

Nothing here matches, normalizes for matching, or touches the store. Every reader takes the
exports as they come and sets bad items aside as rejects (``etl.extract.rejects``).
"""
