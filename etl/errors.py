"""Errors, grouped by what the runner does with them.

ChatsellError
 ├── ConfigError        bad configuration or usage; stops before any write, exit 2
 ├── LockHeld           another run holds the store lock; exit 75
 └── RunFailed          the run cannot go on; the open chunk is rolled back, exit 1
      └── StoreError    the store is unreachable or refused a statement

A bad record is not an exception that leaves the reader: it becomes a reject
(see ``etl.extract.rejects``) and the run goes on.
"""

from __future__ import annotations


class ChatsellError(Exception):
    """Base of every error chatsell raises on purpose."""

    exit_code = 1


class ConfigError(ChatsellError):
    """Configuration or usage is wrong; found before any write."""

    exit_code = 2


class LockHeld(ChatsellError):
    """Another run holds the store lock."""

    exit_code = 75


class RunFailed(ChatsellError):
    """The run cannot continue; what was committed stays, the open chunk is rolled back."""

    exit_code = 1


class StoreError(RunFailed):
    """The store is unreachable or refused a statement."""
