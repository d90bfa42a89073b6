"""Progress on the terminal: a live line on a TTY, plain lines every few seconds otherwise."""

import sys
import threading
import time
from typing import Optional

from reverie.launch.run_state import RunState

_PLAIN_INTERVAL_SECONDS = 5.0


def progress_line(state: RunState, elapsed: float) -> str:
  """env steps, env steps/s, time to run.max_env_steps, learner steps/s, last return, last eval."""
  parts = [f"env steps {state.env_steps:,}/{state.max_env_steps:,}",
           f"{state.env_steps_per_second:,.0f} env steps/s"]
  seconds_left = eta_seconds(state.env_steps, state.max_env_steps, state.env_steps_per_second)
  if seconds_left is not None:
    parts.append(f"ETA {format_duration(seconds_left)}")
  parts.append(f"train step {state.train_step:,} ({state.learner_steps_per_second:,.0f}/s)")
  if state.last_return is not None:
    parts.append(f"return {state.last_return:.1f}")
  if state.evals:
    parts.append(f"eval {state.evals[-1]['avg_return']:.1f} (best {state.best_eval:.1f})")
  parts.append(f"{elapsed:.0f}s")
  return " | ".join(parts)


def eta_seconds(env_steps: int, max_env_steps: int,
                env_steps_per_second: float) -> Optional[float]:
  """Seconds until `max_env_steps` at the current rate; None before there is a rate.

  An early stop at `run.stop_at_return` comes sooner: this is the most it takes.
  """
  if env_steps_per_second <= 0:
    return None
  return max(0, max_env_steps - env_steps) / env_steps_per_second


def format_duration(seconds: float) -> str:
  """42s, 3m05s, 2h07m: what a person reads at a glance."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
  """Shows `progress_line` until `close()`; `note()` prints a line above it."""

  def __init__(self, state: RunState, tty: Optional[bool] = None):
    self._state = state
    self._tty = sys.stdout.isatty() if tty is None else tty
    self._start = time.monotonic()
    self._done = threading.Event()
    self._live = None
    if self._tty:
      from rich.live import Live  # pylint: disable=g-import-not-at-top
      from rich.text import Text  # pylint: disable=g-import-not-at-top
      self._text = Text
      self._live = Live(Text(""), refresh_per_second=4, transient=True)
      self._live.start()
    self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
    self._thread.start()

  def _run(self):
    interval = 0.25 if self._tty else _PLAIN_INTERVAL_SECONDS
    while not self._done.wait(interval):
      line = progress_line(self._state, time.monotonic() - self._start)
      if self._live is not None:
        self._live.update(self._text(line))
      else:
        print(line, flush=True)

  def note(self, message: str) -> None:
    if self._live is not None:
      self._live.console.print(message)
    else:
      print(message, flush=True)

  def close(self) -> None:
    self._done.set()
    self._thread.join()
    if self._live is not None:
      self._live.stop()
