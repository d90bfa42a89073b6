"""n-step transitions: an actor's raw rows in Reverb, summed by the learner's feed in TF.

One Reverb item holds the rows of K consecutive vector steps of an actor, N
lanes each, so it carries K * N transitions. Items are costly and
transitions are cheap (DESIGN.md: inserting an item costs about 25 us
whatever its width; sampling one here about 90 us), so the learner samples
few wide items, sums and flattens them into batches of transitions
(agents/dqn/dataset.py) and masks the lanes that carry no transition.

Transition columns, per lane, for the transition that starts at step s:
  observation       o_s
  action            a_s
  reward            sum_{k<m} gamma^k r_{s+k}, m = n or fewer if the episode ended
  discount          gamma^(m-1) if the bootstrap state o_{s+m} is live, else 0
  next_observation  o_{s+m}
  valid             False where the lane carries nothing (a reset step, warm-up)

An item stores what those sums read, as the actor saw it (`ITEM_COLUMNS`):
the K + n - 1 steps from s to the last bootstrap step, in two columns,
  observations  [K + n, N, ...]: o_s ... o_{s+K+n-1}, in the observation's dtype
  rows          [K + n - 1, A + 4, N] float32, per step: a (A values: DQN's
                actions are integers, exact in float32 below 2^24), r, ended,
                terminated and started (1 or 0; a started step is a reset and
                carries no transition)
so an actor only copies each step into a buffer and hands Reverb two slices
of it (`NStepBlocks`); `unpack` sums the returns in TF, in the learner's
input pipeline, to the same values as `NStepAccumulator`'s, bit for bit.
The n - 1 steps after an item's K are stored twice, in it and in the next.
Reverb's cost grows with the columns: at 64 lanes and K 8, writing an item
of six transition columns took 76 us, two 56 us (issue 9).
"""

from typing import Dict, Optional

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory

from reverie.envs.batched import BatchStep

COLUMNS = ("observation", "action", "reward", "discount", "next_observation", "valid")
ITEM_COLUMNS = ("observations", "rows")
STEP_FIELDS = ("reward", "ended", "terminated", "started")  # each row's fields after the action
_EXACT_FLOAT32_INTEGERS = 2**24


def item_signature(observation_spec, action_spec, num_lanes: int, steps_per_item: int,
                   n_step: int) -> Dict[str, tf.TensorSpec]:
  """The Reverb table signature of one item: K steps of N lanes and the n - 1 after them."""
  integer = tf.as_dtype(action_spec.dtype).is_integer
  if not integer or np.max(action_spec.maximum) >= _EXACT_FLOAT32_INTEGERS:
    raise ValueError(f"DQN replay stores actions as float32: it needs integer actions below "
                     f"2^24, got {action_spec}")
  steps = steps_per_item + n_step - 1
  fields = _action_size(action_spec.shape) + len(STEP_FIELDS)
  return {
      "observations": tf.TensorSpec([steps + 1, num_lanes, *observation_spec.shape],
                                    observation_spec.dtype, "observations"),
      "rows": tf.TensorSpec([steps, fields, num_lanes], tf.float32, "rows"),
  }


def make_item(observations: np.ndarray, actions: np.ndarray,
              **step_fields: np.ndarray) -> Dict[str, np.ndarray]:
  """An item's two columns from its steps' fields ([S + 1, N, ...] observations, [S, N, ...]
  actions and `STEP_FIELDS` keywords of [S, N]), as an actor's rows would hold them."""
  steps, lanes = actions.shape[:2]
  fields = [np.moveaxis(actions.reshape(steps, lanes, -1), -1, 1)]
  fields += [step_fields[name][:, None] for name in STEP_FIELDS]
  return {"observations": observations,
          "rows": np.concatenate(fields, axis=1).astype(np.float32)}


def unpack(item: Dict[str, tf.Tensor], action_spec, n_step: int,
           gamma: float) -> Dict[str, tf.Tensor]:
  """Items' two columns ([..., K + n, N, ...] and [..., K + n - 1, A + 4, N]) as the
  transition columns ([..., K, N, ...]), in TF: `NStepAccumulator`'s n-step sums, to
  the same bits (float64 terms summed in the same order, then rounded to float32).

  Few ops, each over all n windows at once (window k of row s is row s + k): the
  learner traces this at its start, and 174 ops written one window at a time took
  70-120 ms to trace here, these 82 about 37 ms."""
  observations, rows = item["observations"], item["rows"]
  lead = len(rows.shape) - 3  # items batched before the item's own axes
  k_rows = rows.shape[lead] - (n_step - 1)
  windows = np.arange(n_step)[:, None] + np.arange(k_rows)  # [n, K]: rows s + k
  size = _action_size(action_spec.shape)
  # Reward, ended and terminated over the windows (started is read at s only).
  reward, ended, terminated = tf.unstack(
      tf.gather(rows[(Ellipsis, slice(size, size + 3), slice(None))], windows, axis=lead),
      axis=lead + 2)  # each [..., n, K, N]
  # alive[k]: the episode of s has not ended in the k steps before s + k (1 or 0).
  alive = tf.math.cumprod(1.0 - ended, axis=lead, exclusive=True)
  powers = tf.constant((gamma ** np.arange(n_step)).reshape(n_step, 1, 1))
  terms = tf.unstack(powers * tf.cast(reward, tf.float64) * tf.cast(alive, tf.float64), axis=lead)
  ret = terms[0]
  for term in terms[1:]:
    ret += term
  steps = tf.cast(tf.reduce_sum(alive, axis=lead), tf.int32)  # m, 1 .. n
  no_bootstrap = tf.reduce_any((alive * terminated) > 0.5, axis=lead)
  discounts = tf.constant((gamma ** (np.arange(n_step + 1) - 1)).astype(np.float32))
  discount = tf.where(no_bootstrap, 0.0, tf.gather(discounts, steps))
  # o_{s+m}: candidates o_{s+1} .. o_{s+n} moved beside each lane, then m - 1 picks one.
  candidates = tf.gather(observations, windows + 1, axis=lead)  # [..., n, K, N, ...]
  order = list(range(len(candidates.shape)))
  order.insert(lead + 2, order.pop(lead))  # [..., K, N, n, ...]
  next_observation = tf.gather(tf.transpose(candidates, order), steps - 1, axis=lead + 2,
                               batch_dims=lead + 2)
  first = rows[(Ellipsis, slice(0, k_rows), slice(None), slice(None))]  # [..., K, A + 4, N]
  if action_spec.shape:
    action = tf.experimental.numpy.moveaxis(first[..., :size, :], -2, -1)
    action = tf.reshape(action, tf.concat([tf.shape(action)[:-1], action_spec.shape], 0))
  else:
    action = first[..., 0, :]
  return {
      "observation": observations[(slice(None),) * lead + (slice(0, k_rows),)],
      "action": tf.cast(action, action_spec.dtype),
      "reward": tf.cast(ret, tf.float32),
      "discount": discount,
      "next_observation": next_observation,
      "valid": first[..., size + 3, :] < 0.5,
  }


def transitions_per_item(signature, n_step: int) -> int:
  """K * N: the transitions of one item of an experience table with `signature` (or frames')."""
  if "frame" in signature:
    return signature["valid"].shape.num_elements()
  steps, _, lanes = signature["rows"].shape
  return (steps - (n_step - 1)) * lanes


def _action_size(shape) -> int:
  return int(np.prod(shape, dtype=np.int64))


class NStepAccumulator:
  """Turns batched env steps into n-step transitions, all lanes at once.

  Keeps the last n steps of every lane in ring buffers and, each step, emits
  the transition that started n-1 steps earlier. Never crosses an episode:
  rewards after a lane's episode ended are masked, and the reset step that
  follows (`BatchStep.started`) starts no transition.
  """

  def __init__(self, num_lanes: int, n_step: int, gamma: float,
               observation: Optional[np.ndarray]):
    """`observation=None` keeps no observations: the transitions then carry
    `bootstrap_steps` (m) instead, for frame storage (agents/dqn/frames.py)."""
    self._n, self._gamma = n_step, gamma
    self._obs = None
    if observation is not None:
      self._obs = np.zeros((n_step + 1, *observation.shape), observation.dtype)
      self._obs[-1] = observation
    self._actions: Optional[np.ndarray] = None
    self._rewards = np.zeros((n_step, num_lanes), np.float32)
    self._ended = np.zeros((n_step, num_lanes), bool)       # step s+k ended the episode
    self._terminal = np.zeros((n_step, num_lanes), bool)    # ... in a terminal state
    self._live = np.zeros((n_step, num_lanes), bool)        # step s+k carries a transition
    self._lanes = np.arange(num_lanes)

  def add(self, action: np.ndarray, step: BatchStep) -> Dict[str, np.ndarray]:
    """Records a_t and the step it led to; returns the item of transitions ready now."""
    if self._actions is None:
      self._actions = np.zeros((self._n, *action.shape), action.dtype)
    for buf in (self._actions, self._rewards, self._ended, self._terminal, self._live):
      buf[:-1] = buf[1:]
    if self._obs is not None:
      self._obs[:-1] = self._obs[1:]
      self._obs[-1] = step.observation
    self._actions[-1] = action
    self._rewards[-1] = step.reward
    self._ended[-1] = step.ended
    self._terminal[-1] = step.terminated
    self._live[-1] = ~step.started
    return self._emit()

  def _emit(self) -> Dict[str, np.ndarray]:
    alive = np.ones_like(self._live[0])       # the episode of s has not ended before s+k
    ret = np.zeros(len(self._lanes))  # float64, rounded to float32 once summed
    steps = np.zeros(len(self._lanes), np.int64)  # m: steps inside the window
    terminal = np.zeros_like(alive)
    for k in range(self._n):
      ret += alive * (self._gamma ** k) * self._rewards[k]
      steps += alive
      terminal |= alive & self._terminal[k]
      alive = alive & ~self._ended[k]
    discount = np.where(terminal, 0.0, self._gamma ** (steps - 1)).astype(np.float32)
    ret = ret.astype(np.float32)
    if self._obs is None:
      return {"action": self._actions[0].copy(), "reward": ret, "discount": discount,
              "bootstrap_steps": steps.astype(np.int32), "valid": self._live[0].copy()}
    return {
        "observation": self._obs[0].copy(),
        "action": self._actions[0].copy(),
        "reward": ret,
        "discount": discount,
        "next_observation": self._obs[steps, self._lanes],
        "valid": self._live[0].copy(),
    }


_BLOCKS_PER_SHIFT = 8  # NStepBlocks' blocks between two moves of its buffers' last rows


class NStepBlocks:
  """An actor's vector steps for vector observations, K at a time, as items' two columns.

  `add` copies the step into row buffers laid out as the item's columns;
  `take` returns the item of the last K steps: views of the K + n - 1 rows
  (K + n observations) that their n-step sums read, with no arithmetic
  (`unpack` sums them in the learner). The warm-up rows before the first
  step are reset rows, so the first n - 1 transitions are invalid, as
  `NStepAccumulator`'s. CartPole, 64 lanes, K 8, n 3: an item's 8 adds and
  its take cost 34 us, against 76 us when they summed the returns in numpy
  (timeit, same machine and hour, issue 9).

  The buffers hold `blocks_per_shift` blocks of K steps after the n - 1
  steps before the first; after the last block the n - 1 steps the next
  block needs move back to the front (two copies), at the next `add`. An
  item's arrays are views of the buffers, valid until the next `add`;
  Reverb copies them as they are appended (NdArrayToTensor), so a writer
  may hand them over at once.
  """

  def __init__(self, num_lanes: int, n_step: int, observation: np.ndarray, action_shape,
               steps_per_item: int, blocks_per_shift: int = _BLOCKS_PER_SHIFT):
    self._n, self._k, self._blocks, self._block = n_step, steps_per_item, blocks_per_shift, 0
    steps = blocks_per_shift * steps_per_item + n_step - 1
    # Step j of the buffer took the action in _rows[j] at observation _obs[j] and led to _obs[j+1].
    self._obs = np.zeros((steps + 1, *observation.shape), observation.dtype)
    self._obs[n_step - 1] = observation
    size = _action_size(action_shape)
    self._rows = np.zeros((steps, size + len(STEP_FIELDS), num_lanes), np.float32)
    # Each field as a [steps, N] view (the actions [steps, A, N], or [steps, N] for one value).
    self._actions = self._rows[:, 0] if not action_shape else self._rows[:, :size]
    self._action_rows = (num_lanes, size) if action_shape else None
    self._reward, self._ended, self._terminated, self._started = (
        self._rows[:, size + i] for i in range(len(STEP_FIELDS)))
    self._started[...] = 1.0  # warm-up rows: no transition
    self.size = 0  # steps added since the last take

  def add(self, action: np.ndarray, step: BatchStep) -> None:
    """Records a_t and the step it led to (at most K steps between two takes)."""
    if self._block == self._blocks:
      self._shift()
    j = self._n - 1 + self._block * self._k + self.size
    if self._action_rows is None:
      self._actions[j] = action
    else:
      self._actions[j] = action.reshape(self._action_rows).T
    self._reward[j] = step.reward
    self._ended[j] = step.ended
    self._terminated[j] = step.terminated
    self._started[j] = step.started
    self._obs[j + 1] = step.observation
    self.size += 1

  def take(self) -> Dict[str, np.ndarray]:
    """The last K steps' item (`item_signature`'s two columns), as views of the buffers."""
    if self.size != self._k:
      raise ValueError(f"take() after {self.size} steps; a block has {self._k}")
    first = self._block * self._k
    self._block += 1
    self.size = 0
    return {"observations": self._obs[first:first + self._k + self._n],
            "rows": self._rows[first:first + self._k + self._n - 1]}

  def _shift(self) -> None:
    """Moves the n - 1 steps the next block reads back to the buffers' front."""
    last = self._blocks * self._k
    self._rows[:self._n - 1] = self._rows[last:]
    self._obs[:self._n] = self._obs[last:]
    self._block = 0


def to_transition(item: Dict[str, tf.Tensor]) -> trajectory.Transition:
  """A batch of transitions ([B] columns) as the Transition DqnAgent trains on.

  DqnAgent takes a Transition as it is. Given a [B, 2] Trajectory instead, it
  slices it into one and sums its one-step "n-step" reward with a tf.foldr (a
  while loop) on every train step; fed Transitions from Reverb, the DQN
  learner ran 7-17 % more train steps a second at batch 64-256
  (benchmarks/results/learner_throughput.txt). Invalid lanes become LAST
  steps, which DqnAgent's loss masks out. The first time step's reward and
  discount are not read (to_n_step_transition leaves them NaN); here they
  are 0 and 1.
  """
  valid = item["valid"]
  mid = tf.fill(tf.shape(valid), ts.StepType.MID)
  time_step = ts.TimeStep(step_type=tf.where(valid, ts.StepType.MID, ts.StepType.LAST),
                          reward=tf.zeros_like(item["reward"]),
                          discount=tf.ones_like(item["discount"]),
                          observation=item["observation"])
  next_time_step = ts.TimeStep(step_type=mid, reward=item["reward"], discount=item["discount"],
                               observation=item["next_observation"])
  return trajectory.Transition(time_step, policy_step.PolicyStep(item["action"], (), ()),
                               next_time_step)
