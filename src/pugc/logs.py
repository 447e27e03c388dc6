"""One logging setup for the CLI and for every component's process."""
from __future__ import annotations

import logging
import os


def setup_logging() -> None:
    """INFO to stderr with timestamps, once; PUGC_LOG_LEVEL overrides. Quiets chatty libraries."""
    root = logging.getLogger()
    if not any(getattr(h, "_pugc", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._pugc = True
        root.addHandler(handler)
    logging.getLogger("pugc").setLevel(os.environ.get("PUGC_LOG_LEVEL", "INFO"))
    for noisy in ("httpx", "urllib3", "filelock", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
