"""Pixel replay: single frames in Reverb, stacked again when the learner samples.

An Atari observation stacks the last S frames ([S, 84, 84] uint8), so
storing observations and next observations would keep every frame 2S times.
Here each actor row (one vector step) stores only the newest frame of every
lane, with its `age` (steps since its episode's first observation, capped at
S). An item is K rows of n-step transitions (as in transitions.py) plus the
frames they need: the frame column reaches K + n + S - 1 rows back, so
consecutive items overlap by n + S - 1 rows, and Reverb keeps each row's
frames once (items that share history share its chunks).

Column meaning per lane in row T (the transition starts at s = T - n):
  frame            the newest frame of o_T, [H, W] uint8 (K + n + S - 1 rows per item)
  age              min(steps since the episode of o_T began, S), uint8 (same rows)
  action, reward, discount, valid   as in transitions.py, for the transition from s
  bootstrap_steps  m: the bootstrap observation is o_{s+m} (m <= n)

The stack of o_t is the frames of rows t - min(i, age_t) for i = S-1 .. 0:
within an episode the last S frames, at its start the first frame repeated,
as gymnasium's FrameStackObservation(padding_type='reset') builds it.
"""

from typing import Dict

import numpy as np
import tensorflow as tf

SCALAR_COLUMNS = ("action", "reward", "discount", "bootstrap_steps", "valid")
FRAME_COLUMNS = ("frame", "age")


def frame_rows(steps_per_item: int, n_step: int, frame_stack: int) -> int:
  """Rows of the frame columns in one item: K + n + S - 1."""
  return steps_per_item + n_step + frame_stack - 1


def item_signature(observation_spec, action_spec, num_lanes: int, steps_per_item: int,
                   n_step: int) -> Dict[str, tf.TensorSpec]:
  """The Reverb table signature of one item of frames and K rows of transitions."""
  stack, height, width = observation_spec.shape
  rows = frame_rows(steps_per_item, n_step, stack)
  def spec(outer, shape, dtype, name):
    return tf.TensorSpec([outer, num_lanes, *shape], dtype, name)
  return {
      "frame": spec(rows, (height, width), tf.uint8, "frame"),
      "age": spec(rows, (), tf.uint8, "age"),
      "action": spec(steps_per_item, action_spec.shape, action_spec.dtype, "action"),
      "reward": spec(steps_per_item, (), tf.float32, "reward"),
      "discount": spec(steps_per_item, (), tf.float32, "discount"),
      "bootstrap_steps": spec(steps_per_item, (), tf.int32, "bootstrap_steps"),
      "valid": spec(steps_per_item, (), tf.bool, "valid"),
  }


class FrameAges:
  """Tracks each lane's `age` column from the batched steps' reset marks."""

  def __init__(self, num_lanes: int, frame_stack: int):
    self._cap = frame_stack
    self.age = np.zeros(num_lanes, np.uint8)

  def add(self, started: np.ndarray) -> np.ndarray:
    self.age = np.where(started, 0, np.minimum(self.age + 1, self._cap)).astype(np.uint8)
    return self.age


def stack_item(item: Dict[str, tf.Tensor], n_step: int) -> Dict[str, tf.Tensor]:
  """One sampled item as K*N transitions with stacked observations (transitions.py's columns).

  Args:
    item: frame [L, N, H, W], age [L, N] and the scalar columns [K, N, ...].
    n_step: n of the transitions.

  Returns:
    observation and next_observation [K*N, S, H, W] uint8, and the other
    columns [K*N, ...], transitions ordered lane by lane.
  """
  frames = tf.transpose(item["frame"], [1, 0, 2, 3])            # [N, L, H, W]
  age = tf.cast(tf.transpose(item["age"]), tf.int32)             # [N, L]
  steps, lanes = item["valid"].shape[0], item["valid"].shape[1]
  stack = item["frame"].shape[0] - steps - n_step + 1
  start = tf.range(steps, dtype=tf.int32) + stack - 1            # row of o_s for each K row
  start = tf.broadcast_to(start[None, :], [lanes, steps])        # [N, K]
  bootstrap = start + tf.transpose(item["bootstrap_steps"])      # row of o_{s+m}
  back = tf.range(stack - 1, -1, -1, dtype=tf.int32)             # S-1 .. 0

  def stacked(rows):  # rows [N, K] -> [N*K, S, H, W]
    rows_age = tf.gather(age, rows, batch_dims=1)                # [N, K]
    index = rows[..., None] - tf.minimum(back, rows_age[..., None])  # [N, K, S]
    picked = tf.gather(frames, index, batch_dims=1)              # [N, K, S, H, W]
    return tf.reshape(picked, [lanes * steps, *picked.shape[2:]])

  def flat(column):  # [K, N, ...] -> [N*K, ...]
    value = item[column]
    value = tf.transpose(value, [1, 0, *range(2, value.shape.rank)])
    return tf.reshape(value, [lanes * steps, *value.shape[2:]])

  return {"observation": stacked(start), "action": flat("action"), "reward": flat("reward"),
          "discount": flat("discount"), "next_observation": stacked(bootstrap),
          "valid": flat("valid")}
