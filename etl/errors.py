"""Errors, grouped by what the runner does with them.

ChatsellError
 ├── ConfigError        bad configuration or usage; stops before any write, exit 2
 ├── LockHeld           another run holds the store lock; exit 75
 ├── RunStopped         asked to stop (SIGTERM under the scheduler); stops between chunks, the
 │                      run stays open and the next run with the same inputs resumes it
 └── RunFailed          the run cannot go on; the open chunk is rolled back, exit 1
      ├── StoreError    the store is unreachable or refused a statement
      └── ApiError      a Zendesk API refused a request, or kept failing after every retry
           └── TokenRefused   HTTP 401: names where the token came from, never its value

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


class RunStopped(ChatsellError):
    """Asked to stop; what was committed stays and the run can be resumed."""

    exit_code = 143


class RunFailed(ChatsellError):
    """The run cannot continue; what was committed stays, the open chunk is rolled back."""

    exit_code = 1


class StoreError(RunFailed):
    """The store is unreachable or refused a statement."""


class ApiError(RunFailed):
    """A Zendesk API refused a request, or kept failing after every retry."""


class TokenRefused(ApiError):
    """The API answered 401 to the token."""
