"""Leave the process at once, without losing anything Hermit holds.

For the cases where waiting for Scrapy's graceful close is not an option: over the
hard memory limit, or a drain past its deadline. The scheduler writes what is
pending (items, new requests, acks) and gives every lease it still holds back to the
queue; then the process exits with *code*, which tells the supervisor why.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from hermit.worker.session import session_of

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


def exit_now(crawler: Crawler, code: int, why: str) -> None:
    logger.error("%s: returning leases and exiting now (exit status %d)", why, code)
    session = session_of(crawler)
    if session is not None:
        try:
            session.close("exit_now")
        except Exception:  # the exit must happen whatever went wrong here
            logger.exception("Could not return every lease; the rest expire with this worker's lease timeout")
    logging.shutdown()
    os._exit(code)
