"""Pulling exports from the live Zendesk Chat and Sell APIs into files ``sync`` reads (SPEC 8)."""

from etl.pull.chat import pull_chat
from etl.pull.client import ApiError, ClientOptions, RetryPolicy, TokenRefused
from etl.pull.output import PullResult
from etl.pull.sell import pull_sell

__all__ = [
    "ApiError",
    "ClientOptions",
    "PullResult",
    "RetryPolicy",
    "TokenRefused",
    "pull_chat",
    "pull_sell",
]
