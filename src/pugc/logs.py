"""One logging setup for the CLI and for every component's process."""
from __future__ import annotations

import logging
import os
import sys


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners and the local runner swap it)."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


def setup_logging() -> None:
    """INFO and up from pugc's own loggers to stderr with timestamps, once; PUGC_LOG_LEVEL overrides.

    The handler sits on the `pugc` logger (not the root) and does not propagate, so inside a KFP task, whose
    executor configures the root logger itself, every line appears once.
    """
    logger = logging.getLogger("pugc")
    if not any(getattr(h, "_pugc", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._pugc = True
        logger.addHandler(handler)
    logger.setLevel(os.environ.get("PUGC_LOG_LEVEL", "INFO"))
    logger.propagate = False
    # transformers' per-call progress bars (loading/writing weights) drown the stage progress. Importing
    # transformers to switch them off would cost every task, CPU ones included, about a second of start-up:
    # the hub's switch is set before transformers loads (it reads it then), and its own once it has.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:
        hf_logging.disable_progress_bar()
