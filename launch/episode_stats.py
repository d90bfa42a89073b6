"""An actor's books: its env steps into the run's counters, its episodes' returns and lengths,
and both to TensorBoard.

Actors call `EpisodeStats.add` after every vector step, so it does as little
as it can there: three row copies. Every `rows_per_booking` rows (a DQN
item's or a PPO rollout's vector steps, so that an actor waiting on Reverb has
booked all its steps) it counts the env steps they moved: the run's budget,
epsilon and the evaluator's schedule read that count. About every
`_EPISODE_SECONDS`, or when its rows are full, it sums the episodes that ended
in all the rows since, at once.
At 64 CartPole lanes, keeping a return and a begin step per lane on every
vector step took 7-10 us of the actor's 112-129 a vector step; this takes
about 5 (timed copies of its loop, benchmarks/results/actor_throughput.txt).
"""

import time
from typing import List

import numpy as np
import tensorflow as tf

from reverie.envs.batched import BatchStep
from reverie.launch import contract
from reverie.launch.run_state import RunState

_SUMMARY_SECONDS = 2.0
_EPISODE_ROWS = 256     # at least this many rows are kept before their episodes are summed
_EPISODE_SECONDS = 0.5  # ... or this long after the last sum


class EpisodeStats:
  """Counts an actor's env steps and episodes; writes its rate and returns to TensorBoard.

  Env steps reach `RunState` every `rows_per_booking` vector steps, and
  episodes within about `_EPISODE_SECONDS`; `close()` books the rest.
  """

  def __init__(self, lanes: int, run_dir: contract.RunDir, index: int, rows_per_booking: int):
    self._booking_rows = rows_per_booking
    capacity = rows_per_booking * -(-_EPISODE_ROWS // rows_per_booking)  # whole bookings
    self._reward = np.zeros((capacity, lanes), np.float32)
    self._ended = np.zeros((capacity, lanes), bool)
    self._started = np.zeros((capacity, lanes), bool)
    self._rows = 0      # rows filled since the last episode sum
    self._booked = 0    # of them, rows whose env steps are booked
    # Each lane's open episode at the first row: its return and length so far.
    self._open_return, self._open_length = np.zeros(lanes), np.zeros(lanes, np.int32)
    self._summary = tf.summary.create_file_writer(str(run_dir.tensorboard("actor", index)))
    self._own_steps = 0
    self._env_steps = None  # the run's env steps (all actors) at the last booking
    self._last_episodes = time.monotonic()
    self._reset_window(self._last_episodes)

  def _reset_window(self, start: float) -> None:
    self._start, self._start_steps = start, self._own_steps
    self._returns: List[float] = []
    self._lengths: List[int] = []

  def add(self, step: BatchStep, state: RunState) -> int:
    """Records one vector step; returns the env steps booked now (a reset step moves none)."""
    row = self._rows
    self._reward[row] = step.reward
    self._ended[row] = step.ended
    self._started[row] = step.started
    self._rows = row + 1
    if self._rows - self._booked < self._booking_rows:
      return 0
    return self._book(state)

  def _book(self, state: RunState) -> int:
    """Books the rows not booked yet: their env steps, and the episodes once due."""
    rows = slice(self._booked, self._rows)
    moved = self._started[rows].size - np.count_nonzero(self._started[rows])
    self._booked = self._rows
    self._own_steps += moved
    now = time.monotonic()
    summary_due = now - self._start >= _SUMMARY_SECONDS
    returns = []
    if (summary_due or self._rows == len(self._reward)
        or now - self._last_episodes >= _EPISODE_SECONDS):
      returns = self._sum_episodes()
      self._last_episodes = now
    self._env_steps = state.add_env_steps(moved, returns)
    if summary_due:
      self._write(self._env_steps, state)
    return moved

  def _sum_episodes(self) -> List[float]:
    """Returns and lengths of the episodes that ended in the rows, in step then lane order;
    the rows are emptied, open episodes carried."""
    n, self._rows, self._booked = self._rows, 0, 0
    started, ended = self._started[:n], self._ended[:n]
    moved = ~started
    # A reset step starts its lane's episode: no reward, no length (BatchStep).
    total = np.cumsum(np.where(started, 0.0, self._reward[:n]), axis=0)
    total += self._open_return
    # int32: summing the bools into int64 made this whole call take 2.0-2.3 ms for 256 rows of
    # 256 lanes here, against 1.6 ms; the same at 64 lanes (issue 9). Episodes stay under 2**31.
    length = np.cumsum(moved, axis=0, dtype=np.int32)
    length += self._open_length
    finished = ended & moved
    lane, row = np.nonzero(finished.T)  # lane by lane, each lane's episodes in order
    at_end, length_at_end = total[row, lane], length[row, lane]
    # An episode's sums are the lane's running sums at its end less those at the lane's
    # previous end in these rows (none: the open episode's sums are in the running ones).
    again = np.zeros(len(lane), bool)
    again[1:] = lane[1:] == lane[:-1]
    returns, lengths = at_end.copy(), length_at_end.copy()
    returns[1:] -= np.where(again[1:], at_end[:-1], 0.0)
    lengths[1:] -= np.where(again[1:], length_at_end[:-1], 0)
    self._open_return, self._open_length = total[-1].copy(), length[-1].copy()
    last = np.ones(len(lane), bool)  # each lane's last episode in these rows
    last[:-1] = ~again[1:]
    self._open_return[lane[last]] -= at_end[last]
    self._open_length[lane[last]] -= length_at_end[last]
    order = np.lexsort((lane, row))  # as they ended: step by step, lane by lane
    returns, lengths = returns[order].tolist(), lengths[order].tolist()
    self._returns += returns
    self._lengths += lengths
    return returns

  def _write(self, env_steps: int, state: RunState) -> None:
    """Writes at `env_steps` (all actors): this actor's rate and its finished episodes."""
    now = time.monotonic()
    rate = (self._own_steps - self._start_steps) / (now - self._start)
    state.env_steps_per_second = rate * state.actor_count
    with self._summary.as_default(step=env_steps):
      tf.summary.scalar("actor/env_steps_per_second", rate)
      if self._returns:
        tf.summary.scalar("actor/episode_return", float(np.mean(self._returns)))
        tf.summary.scalar("actor/episode_length", float(np.mean(self._lengths)))
    self._reset_window(now)

  def close(self, state: RunState) -> None:
    """Books the rows left and writes the last window (a short run's only one), then closes
    the writer."""
    if self._rows > self._booked:
      self._book(state)
    if self._rows:
      returns = self._sum_episodes()
      self._env_steps = state.add_env_steps(0, returns)
    if self._env_steps is not None and self._own_steps > self._start_steps:
      self._write(self._env_steps, state)
    self._summary.close()
