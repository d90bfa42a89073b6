"""Ctrl-C and SIGTERM for a training process whose main thread may sit in one long TF call.

Python runs signal handlers in the main thread between bytecodes, so a
learner blocked inside a graph call (PPOLearner waiting for rollouts) would
never see them. Instead both signals are blocked in every thread and one
thread waits for them: it asks the run to stop (the launcher then saves the
learner and ends the roles), and the main thread raises the matching
exception once the run has wound down. A second signal exits at once.
"""

import os
import signal
import threading
from typing import Optional

from reverie.launch.run_state import RunState

_SIGNALS = {signal.SIGINT, signal.SIGTERM}
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Terminated(SystemExit):
  """SIGTERM: the run shut down like on Ctrl-C; exit code 143."""


def block_signals() -> None:
  """Blocks SIGINT and SIGTERM in this thread and every thread started after it.

  Call it first thing in the main thread: numpy's BLAS and TensorFlow start
  native threads on import, and a thread that does not block SIGTERM would
  take it and die of it. Until a SignalWatcher starts, the signals wait.
  """
  signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


class SignalWatcher:
  """Waits for SIGINT and SIGTERM in a thread of its own (after `block_signals()`)."""

  def __init__(self, state: RunState):
    self._state = state
    self.received: Optional[int] = None
    threading.Thread(target=self._wait, name="signals", daemon=True).start()

  def _wait(self) -> None:
    self.received = signal.sigwait(_SIGNALS)
    self._state.interrupt("interrupted" if self.received == signal.SIGINT else "terminated")
    second = signal.sigwait(_SIGNALS)
    os._exit(EXIT_CODES[second])  # pylint: disable=protected-access

  def raise_if_received(self) -> None:
    """KeyboardInterrupt after Ctrl-C, Terminated after SIGTERM; nothing otherwise."""
    if self.received == signal.SIGINT:
      raise KeyboardInterrupt()
    if self.received == signal.SIGTERM:
      raise Terminated()
