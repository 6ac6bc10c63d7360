"""The run's helper processes (the parsing workers, forked from the run; the writer, started by
it): never outliving it; and the process's memory (the collector paused, the heap trimmed)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` processes forked from this one (on the first task), which end with it: a
    run killed with SIGKILL leaves no worker behind holding its files or its output. (Linux
    ties them to the thread that forks them: submit the first task from the main thread.)"""
    import multiprocessing  # (here: the store's reads import this module, and need none of it)
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_end_with, initargs=(os.getpid(),)
    )


def _end_with(parent: int) -> None:
    """A worker's first step: be killed when ``parent`` ends (Linux), else notice it soon."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        threading.Thread(target=watch_parent, args=(parent, 0.5), daemon=True).start()
    if os.getppid() != parent:  # it ended before the request took effect
        os._exit(70)


_PR_SET_PDEATHSIG = 1


def watch_parent(parent: int, poll_s: float) -> None:
    """End this process (a thread's loop) as soon as ``parent`` is gone: its pipes may be held
    open by others, so their end is no sign."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    os._exit(70)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: for parsing and typing many records at once.

    Parsed JSON, a fetch's row tuples and a file's typed columns hold no cycles, but they are
    millions of containers that all live until a frame is built, and every collection their
    allocations set off walks all of them again (it doubled a CRM read, made orjson's parse of
    a 50,000-record page 3x as long). What they leave is freed by reference counting; the
    collector runs again after. A caller's disabled collector stays disabled.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def release_memory() -> None:
    """Give the C heap's free pages back to the system (glibc keeps them otherwise: a process
    that once held a snapshot's rows stays that large). A no-op where there is no glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
