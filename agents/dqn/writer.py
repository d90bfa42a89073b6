"""The actor's side of DQN replay: n-step transitions into Reverb items.

Vector observations: one item is the raw rows of K vector steps and the n - 1
after them (transitions.py), appended to Reverb as one step of two columns. Pixel
observations (stacked uint8 frames): frames once per row and the transitions
beside them, laid out as agents/dqn/frames.py describes.
"""

from typing import Dict

import numpy as np

from reverie.agents import pixels
from reverie.agents import replay
from reverie.agents.dqn import frames
from reverie.agents.dqn import transitions
from reverie.envs.batched import BatchStep


class ReplayWriter:
  """Appends one row per vector step to a Reverb trajectory writer and forms items.

  Call `add` after every env step and `create_item` when `item_ready()`.
  """

  def __init__(self, client, table: str, observation_spec, action_spec,
               observation: np.ndarray, steps_per_item: int, n_step: int, gamma: float):
    lanes = len(observation)
    self._table, self._k = table, steps_per_item
    self.on_frames = pixels.is_pixels(observation_spec)
    self.transitions_per_item = steps_per_item * lanes
    if self.on_frames:
      stack = observation_spec.shape[0]
      self._frame_rows = frames.frame_rows(steps_per_item, n_step, stack)
      self._writer = client.trajectory_writer(num_keep_alive_refs=self._frame_rows)
      self._ages = frames.FrameAges(lanes, stack)
      self._nstep = transitions.NStepAccumulator(lanes, n_step, gamma, None)
      # Row 0 holds the first observation's frame; it starts no transition.
      self._writer.append({"frame": observation[:, -1], "age": self._ages.age,
                           **_no_transitions(lanes, action_spec)})
      self._rows = 1
    else:
      # The rows of an item go to Reverb as one step of its two columns: one
      # append and one item per K vector steps (Reverb's cost is per call).
      self._writer = client.trajectory_writer(num_keep_alive_refs=1)
      self._blocks = transitions.NStepBlocks(lanes, n_step, observation, action_spec.shape,
                                             steps_per_item)
      self._rows = 0
    self._since_item = 0

  @property
  def writer(self):
    """The Reverb trajectory writer (for flushing and closing)."""
    return self._writer

  def add(self, action: np.ndarray, step: BatchStep) -> None:
    """Records a_t and the step it led to (rewards as the learner should see them)."""
    if self.on_frames:
      row = self._nstep.add(action, step)
      row["frame"] = step.observation[:, -1]
      row["age"] = self._ages.add(step.started)
      self._writer.append(row)
    else:
      self._blocks.add(action, step)
    self._rows += 1
    self._since_item += 1

  def item_ready(self) -> bool:
    """K rows since the last item, and enough history for the frame columns."""
    needed = self._frame_rows if self.on_frames else self._k
    return self._since_item >= self._k and self._rows >= needed

  def create_item(self, priority: float = 1.0) -> None:
    if self.on_frames:
      history = self._writer.history
      columns = {k: history[k][-self._k:] for k in frames.SCALAR_COLUMNS}
      columns.update({k: history[k][-self._frame_rows:] for k in frames.FRAME_COLUMNS})
      self._writer.create_item(self._table, priority, columns)
    else:
      replay.write_item(self._writer, self._blocks.take(), [self._table], priority)
    self._since_item = 0


def _no_transitions(lanes: int, action_spec) -> Dict[str, np.ndarray]:
  return {"action": np.zeros((lanes, *action_spec.shape), action_spec.dtype), "reward": np.zeros(lanes, np.float32),
          "discount": np.zeros(lanes, np.float32),
          "bootstrap_steps": np.zeros(lanes, np.int32), "valid": np.zeros(lanes, bool)}
