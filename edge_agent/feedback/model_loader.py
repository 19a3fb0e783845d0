"""The one thread that loads models: `active` and `candidate` links, cmd/reload|promote|rollback.

A load takes seconds for a big model. On this thread it never holds up the main loop (which
feeds the systemd watchdog) nor paho's network thread (which answers the broker): the main
loop only schedules a pass over the links, a command handler only enqueues its command, and
the command's reply is sent from here when the work is done.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import structlog

log = structlog.get_logger()

Result = TypeVar("Result")
THREAD_NAME = "model-loader"


class ModelLoader:
    """A single-thread executor for model work; jobs run one at a time, in order."""

    def __init__(self, follow_links: Callable[[], None]) -> None:
        self._follow_links = follow_links
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        self._following: Future[None] | None = None

    def follow_links(self) -> None:
        """Schedule a pass over the model links unless one is still pending (main loop)."""
        pending = self._following
        if pending is not None and not pending.done():
            return
        self._following = self.submit(self._follow_links)

    def submit(
        self, job: Callable[[], Result], then: Callable[[Result], None] | None = None
    ) -> Future[Result] | None:
        """Run `job` on the loader thread, then `then(result)` there (a command's reply);
        None once the loader is stopped (the agent is shutting down)."""

        def run() -> Result:
            try:
                result = job()
                if then is not None:
                    then(result)
            except Exception:
                log.exception("model_work_failed", job=getattr(job, "__name__", repr(job)))
                raise
            return result

        try:
            return self._executor.submit(run)
        except RuntimeError:  # shut down: a command arriving while the agent stops
            log.warning("model_work_refused", reason="stopping")
            return None

    def stop(self) -> None:
        """Finish the job in hand, drop the queued ones, stop the thread."""
        self._executor.shutdown(wait=True, cancel_futures=True)
