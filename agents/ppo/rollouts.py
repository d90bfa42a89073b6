"""PPO rollouts: written by actors with their policy version, read by the learner in minibatches.

One Reverb item is one actor's rollout with one policy version: T vector
steps of N lanes plus the step after them (its value prediction bootstraps
the last advantage), so every trajectory column is [T+1, N, ...], and
`version` is the learner train step of the weights that acted.

Column meaning at step t, per lane (TF-Agents' Trajectory):
  step_type       FIRST after a reset, LAST at a terminal or truncated observation, else MID
  observation     o_t
  action          a_t as sampled by the policy (before clipping to a Box's bounds)
  policy_info     the distribution's parameters and the value prediction at o_t
  next_step_type  the step type of o_{t+1}
  reward          r_{t+1}
  discount        0 if o_{t+1} is terminal, else 1
"""

from typing import Dict, Optional

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory

from reverie.envs.batched import BatchStep


def item_signature(agent, num_lanes: int, rollout_steps: int) -> Dict:
  """{'trajectory': Trajectory of [T+1, N, ...] specs, 'version': int64 scalar}."""
  outer = [rollout_steps + 1, num_lanes]
  spec = tf.nest.map_structure(lambda s: tf.TensorSpec([*outer, *s.shape], s.dtype),
                               agent.collect_data_spec)
  return {"trajectory": spec, "version": tf.TensorSpec([], tf.int64)}


class RolloutBuilder:
  """Builds one rollout of T+1 steps for N lanes in numpy, a step at a time."""

  def __init__(self, rollout_steps: int, observation: np.ndarray):
    self._length = rollout_steps + 1
    self._steps = []
    self.observation = observation
    self.step_type = np.full(len(observation), ts.StepType.FIRST, np.int32)

  @property
  def needs_bootstrap_step(self) -> bool:
    return len(self._steps) == self._length - 1

  def add(self, action: np.ndarray, info, step: Optional[BatchStep]) -> None:
    """Records a_t at the current observation and what the environment returned.

    The last (bootstrap) step of a rollout is recorded with `step=None`: its
    action is never trained on and the environment is not stepped for it.
    """
    if step is None:
      lanes = len(self.observation)
      next_step_type = np.full(lanes, ts.StepType.MID, np.int32)
      reward, discount = np.zeros(lanes, np.float32), np.ones(lanes, np.float32)
    else:
      next_step_type = np.where(step.started, ts.StepType.FIRST,
                                np.where(step.terminated | step.truncated, ts.StepType.LAST,
                                         ts.StepType.MID)).astype(np.int32)
      reward = np.where(step.started, 0.0, step.reward).astype(np.float32)
      discount = np.where(step.terminated & ~step.started, 0.0, 1.0).astype(np.float32)
    self._steps.append(trajectory.Trajectory(
        step_type=self.step_type, observation=self.observation, action=action,
        policy_info=info, next_step_type=next_step_type, reward=reward, discount=discount))
    if step is not None:
      self.observation, self.step_type = step.observation, next_step_type

  def take(self) -> trajectory.Trajectory:
    """The rollout as [T+1, N, ...] arrays; the builder starts the next one empty."""
    steps, self._steps = self._steps, []
    return tf.nest.map_structure(lambda *xs: np.stack(xs), *steps)


STOP_VERSION = -1
STOP_MESSAGE = "the run stopped: end of rollouts"


def stop_marker(signature) -> Dict:
  """An item of version STOP_VERSION: reading it ends a learner's wait for rollouts.

  PPOLearner waits for data inside one graph call; its dataset raises
  STOP_MESSAGE when it reads this item.
  """
  item = tf.nest.map_structure(lambda s: np.zeros(s.shape, s.dtype.as_numpy_dtype), signature)
  item["version"] = np.int64(STOP_VERSION)
  return item


def minibatches(agent, item: trajectory.Trajectory, minibatch_size: int,
                advantages: bool = True, order: Optional[tf.Tensor] = None):
  """One rollout ([T+1, N, ...] columns) as [M, minibatch_size, 1, ...] minibatches.

  Advantages and returns come from `agent.preprocess_sequence` (GAE over the
  T+1 steps of each lane); the bootstrap step is then cut off, so every step
  has a real advantage. The N*T steps are shuffled (or put in `order`) and cut
  into minibatches with one gather.
  """
  lanes_first = tf.nest.map_structure(
      lambda x: tf.transpose(x, [1, 0, *range(2, x.shape.rank)]), item)
  processed = agent.preprocess_sequence(lanes_first) if advantages else lanes_first
  steps = tf.nest.map_structure(lambda x: x[:, :-1], processed)  # [N, T]: no bootstrap step
  count = item.reward.shape[1] * (item.reward.shape[0] - 1)
  order = tf.random.shuffle(tf.range(count)) if order is None else order
  return tf.nest.map_structure(
      lambda x: tf.reshape(tf.gather(tf.reshape(x, [count, *x.shape[2:]]), order),
                           [count // minibatch_size, minibatch_size, 1, *x.shape[2:]]), steps)


def make_dataset(server_address: str, table: str, agent, min_version: tf.Variable,
                 minibatch_size: int, dropped: Optional[tf.Variable] = None,
                 advantages: bool = True, lanes: Optional[slice] = None) -> tf.data.Dataset:
  """Shuffled [minibatch_size, 1] minibatches of the current policy versions' rollouts, endlessly.

  Items older than `min_version` are dropped (counted in `dropped` when
  given). Each item becomes minibatches with `minibatches` (GAE, shuffle, one
  gather), instead of PPOLearner's own pipeline that unbatches, shuffles and
  rebatches step by step.

  `advantages=False` skips GAE, for the normalizers' copy of the rollouts
  (they read observations and rewards only). `lanes` keeps those lanes of
  every rollout (a learner worker's share).

  One Reverb sampler serves the whole run, one rollout in flight: the learner
  reads every rollout it takes (a sampler made per rollout cost about 1 ms
  of every policy version). Nothing is prefetched after the version filter:
  it must see `min_version` as it is when the learner asks for data, not as
  it was before the last push.
  """
  import reverb  # pylint: disable=g-import-not-at-top
  signature = reverb.TrajectoryDataset.from_table_signature(
      server_address, table, max_in_flight_samples_per_worker=1,
      get_signature_timeout_secs=30).element_spec.data

  # The functions below branch with tf.cond only; tf.data would otherwise run
  # autograph over them and over all they call (TF-Agents' GAE): start-up time.
  no_autograph = tf.autograph.experimental.do_not_convert

  def drop():
    with tf.control_dependencies([dropped.assign_add(1)]):
      return tf.constant(False)

  @no_autograph
  def current(sample):
    version = sample.data["version"]
    stopped = tf.debugging.assert_none_equal(version, tf.constant(STOP_VERSION, tf.int64),
                                             message=STOP_MESSAGE)
    with tf.control_dependencies([stopped]):
      keep = version >= min_version
    return keep if dropped is None else tf.cond(keep, lambda: keep, drop)

  @no_autograph
  def to_minibatches(sample):
    # Reverb rebuilds the namedtuple from the table signature without its methods.
    item = trajectory.Trajectory(**sample.data["trajectory"]._asdict())
    if lanes is not None:
      item = tf.nest.map_structure(lambda x: x[:, lanes], item)
    steps = minibatches(agent, item, minibatch_size, advantages=advantages)
    return tf.data.Dataset.from_tensor_slices(steps)

  items = reverb.TrajectoryDataset(
      server_address, table, dtypes=tf.nest.map_structure(lambda s: s.dtype, signature),
      shapes=tf.nest.map_structure(lambda s: s.shape, signature),
      max_in_flight_samples_per_worker=1, num_workers_per_iterator=1)
  return items.filter(current).flat_map(to_minibatches).map(no_autograph(lambda steps: (steps, ())))
