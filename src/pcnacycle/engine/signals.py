"""Stopping a training run cleanly: Ctrl-C and SIGTERM wait for the step or checkpoint under way."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM, as a cluster scheduler sends, raise KeyboardInterrupt while active.

    Inside :meth:`held` a signal is only noted and raised when the block
    ends, so a block that must not be cut in half (an optimizer step with
    its scheduler step, a checkpoint save) completes first. Only the main
    thread can receive signals; elsewhere this does nothing.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.holding, self.pending, self.previous = False, None, {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handle) for sig in self._SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.holding:
            self.pending = signum
        else:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    @contextmanager
    def held(self):
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise KeyboardInterrupt(signal.Signals(signum).name)
