"""``chatsell push``: what a sync decided, delivered from the outbox to a destination (Zendesk
Sell first) exactly once. ``runner`` is destination-neutral (the outbox, exactly once); ``http``
paces and retries; ``sell`` is the Sell destination."""
