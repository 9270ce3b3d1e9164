"""Ctrl-C and SIGTERM: either a flag that a loop checks after its current step (transfer, train), or an
exception that unwinds through every cleanup (the other commands). No TensorFlow here.
"""

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; like KeyboardInterrupt, `except Exception` does not catch it.

    Attributes:
      signum: the signal's number; the command exits with 128 + signum.
    """

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self):
        return signal.Signals(self.signum).name


def _raise(signum, frame):  # pylint: disable=unused-argument
    raise Interrupted(signum)


@contextlib.contextmanager
def _handlers(handler):
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def raising():
    """A context in which SIGINT and SIGTERM raise Interrupted."""
    return _handlers(_raise)


class StopSignals:
    """A context in which the first SIGINT or SIGTERM only sets `signum`; a second one raises Interrupted.

    A loop checks `signum` (or calls `requested()`) after every step and stops cleanly.
    """

    def __init__(self):
        self.signum = None
        self._context = None

    def _handle(self, signum, frame):  # pylint: disable=unused-argument
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def requested(self):
        return self.signum is not None

    def __enter__(self):
        self._context = _handlers(self._handle)
        self._context.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._context.__exit__(*exc_info)
