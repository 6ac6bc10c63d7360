"""A run's scratch space: the chats and Sell records it read, before anything is written to the
store (a dry run stages too: the store is never touched)."""
