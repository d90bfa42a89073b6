"""n-step transitions: summed by actors in numpy, trained on as TF-Agents Transitions.

One Reverb item is K consecutive vector steps of an actor, N lanes each, so
one item carries K * N transitions. Items are costly and transitions are
cheap (DESIGN.md: inserting an item costs about 25 us whatever its width;
sampling one here about 90 us), so the learner samples few wide items,
flattens them into batches of transitions (agents/dqn/dataset.py) and masks
the lanes that carry no transition.

Transition columns, per lane, for the transition that started n-1 steps ago at s:
  observation       o_s
  action            a_s
  reward            sum_{k<m} gamma^k r_{s+k}, m = n or fewer if the episode ended
  discount          gamma^(m-1) if the bootstrap state o_{s+m} is live, else 0
  next_observation  o_{s+m}
  valid             False where the lane carries nothing (a reset step, warm-up)

An item packs them into two Reverb columns (`ITEM_COLUMNS`; `pack` and
`unpack`), each field one contiguous [K, N] block that the actor fills in
place:
  observations  [2, K, N, ...]: o_s, then o_{s+m}, in the observation's dtype
  scalars       [A + 3, K, N] float32: a_s (A values: DQN's actions are
                integers, exact in float32 below 2^24), reward, discount and
                valid (1 or 0)
Reverb's cost grows with the columns: at 64 lanes and K 8, writing an item
of the six transition columns took 76 us, the two 56 us (issue 9).
"""

from typing import Dict, Optional

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory

from reverie.envs.batched import BatchStep

COLUMNS = ("observation", "action", "reward", "discount", "next_observation", "valid")
ITEM_COLUMNS = ("observations", "scalars")
_EXACT_FLOAT32_INTEGERS = 2**24

def item_signature(observation_spec, action_spec, num_lanes: int,
                   steps_per_item: int) -> Dict[str, tf.TensorSpec]:
  """The Reverb table signature of one item: K steps of N lanes, packed (`pack`)."""
  integer = tf.as_dtype(action_spec.dtype).is_integer
  if not integer or np.max(action_spec.maximum) >= _EXACT_FLOAT32_INTEGERS:
    raise ValueError(f"DQN replay packs actions as float32: it needs integer actions below "
                     f"2^24, got {action_spec}")
  rows = [steps_per_item, num_lanes]
  return {
      "observations": tf.TensorSpec([2, *rows, *observation_spec.shape], observation_spec.dtype,
                                    "observations"),
      "scalars": tf.TensorSpec([_action_size(action_spec.shape) + 3, *rows], tf.float32,
                               "scalars"),
  }


def pack(columns: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """One item's transition columns ([K, N, ...] numpy arrays, `COLUMNS`) as its two columns."""
  rows = columns["valid"].shape
  actions = np.moveaxis(columns["action"].reshape(*rows, -1), -1, 0)
  return {
      "observations": np.stack([columns["observation"], columns["next_observation"]]),
      "scalars": np.concatenate([actions, np.stack([columns["reward"], columns["discount"],
                                                    columns["valid"]])]).astype(np.float32),
  }


def unpack(item: Dict[str, tf.Tensor], action_spec) -> Dict[str, tf.Tensor]:
  """Items' two columns ([..., 2, K, N, ...] and [..., A + 3, K, N]) as the transition
  columns ([..., K, N, ...]), in TF."""
  observations, scalars = item["observations"], item["scalars"]
  lead = len(scalars.shape) - 3  # items batched before the item's own axes
  field = lambda x, i: x[(slice(None),) * lead + (i,)]
  size = _action_size(action_spec.shape)
  if action_spec.shape:
    action = tf.stack([field(scalars, i) for i in range(size)], axis=-1)
    action = tf.reshape(action, tf.concat([tf.shape(action)[:-1], action_spec.shape], 0))
  else:
    action = field(scalars, 0)
  action = tf.cast(action, action_spec.dtype)
  return {
      "observation": field(observations, 0),
      "action": action,
      "reward": field(scalars, size),
      "discount": field(scalars, size + 1),
      "next_observation": field(observations, 1),
      "valid": field(scalars, size + 2) > 0.5,
  }


def transitions_per_item(signature) -> int:
  """K * N: the transitions of one item of an experience table with `signature` (or frames')."""
  if "frame" in signature:
    return signature["valid"].shape.num_elements()
  return signature["scalars"].shape[1:].num_elements()


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
    ret = np.zeros_like(self._rewards[0])
    steps = np.zeros(len(self._lanes), np.int64)  # m: steps inside the window
    terminal = np.zeros_like(alive)
    for k in range(self._n):
      ret += alive * (self._gamma ** k) * self._rewards[k]
      steps += alive
      terminal |= alive & self._terminal[k]
      alive = alive & ~self._ended[k]
    discount = np.where(terminal, 0.0, self._gamma ** (steps - 1)).astype(np.float32)
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
  """NStepAccumulator's rows for vector observations, K at a time, as one item's columns.

  `add` only copies the step into a buffer; `take` sums the n-step returns of
  all K rows at once, over [n, K, N] windows of the buffers, into the item's
  packed columns (CartPole, 64 lanes, K 8: 28 us for an item's 8 `add`s and
  its `take` alone, timeit; 30 us a step one row at a time, in an earlier
  measure). The rows are the ones NStepAccumulator emits for the same steps,
  bit for bit, the warm-up rows (valid False) included.

  `take` fills the same arrays every time, its scratch too: a 64-lane
  CartPole actor ran at 0.78 of env + policy alone against 0.76 with new
  arrays every item (benchmarks/results/actor_throughput.txt). An item's
  arrays are valid until the next `take`; Reverb copies them as they are
  appended (NdArrayToTensor), so a writer may hand them over.

  Inside that loop every numpy call costs more than alone, so `take` makes
  few: the buffers hold `blocks_per_shift` blocks, the n-1 steps the next
  block needs move back (six copies) once every that many takes, and each
  block's actions are read through views made once. That gained the actor
  about half a point of env + policy, within this machine's noise.
  """

  def __init__(self, num_lanes: int, n_step: int, gamma: float, observation: np.ndarray,
               steps_per_item: int, blocks_per_shift: int = _BLOCKS_PER_SHIFT):
    self._n, self._k = n_step, steps_per_item
    # The buffers hold `blocks_per_shift` blocks of K steps after the n-1 steps before the
    # first; block b's rows start at b * K. Only after the last block do the n-1 steps the
    # next rows need move back to the front.
    self._blocks, self._block = blocks_per_shift, 0
    steps = blocks_per_shift * steps_per_item + n_step - 1
    # Step j of the buffer took action _actions[j] at observation _obs[j] and led to _obs[j+1].
    self._obs = np.zeros((steps + 1, *observation.shape), observation.dtype)
    self._obs[n_step - 1] = observation
    self._actions: Optional[np.ndarray] = None
    self._rewards = np.zeros((steps, num_lanes), np.float32)
    self._ended = np.zeros((steps, num_lanes), bool)
    self._terminal = np.zeros((steps, num_lanes), bool)
    self._started = np.ones((steps, num_lanes), bool)  # no transition: reset (and warm-up) rows
    # o_{s+m} of row r, lane i is row (r + m) * N + i of the buffer's [rows * N, ...] view.
    self._obs_flat = self._obs.reshape(-1, *observation.shape[1:])
    row_lane = np.arange(steps_per_item)[:, None] * num_lanes + np.arange(num_lanes)
    self._row_lane = [row_lane + b * steps_per_item * num_lanes for b in range(blocks_per_shift)]
    self._num_lanes, self._action_size = num_lanes, None
    # take() reads the n windows of block b's K rows (window k starts k steps later) as
    # [n, K, N] views of the buffers, and gamma^k and gamma^(m-1) from tables.
    window = lambda buf, b: np.lib.stride_tricks.as_strided(
        buf[b * steps_per_item:], (n_step, steps_per_item, num_lanes),
        (buf.strides[0], *buf.strides))
    self._windows = [tuple(window(buf, b) for buf in (self._rewards, self._ended, self._terminal))
                     for b in range(blocks_per_shift)]
    self._alive = np.ones((n_step, steps_per_item, num_lanes), bool)  # row 0 stays True
    self._gamma_powers = (gamma ** np.arange(n_step))[:, None, None]
    self._discounts = (gamma ** (np.arange(n_step + 1) - 1)).astype(np.float32)  # [m] = gamma^(m-1)
    # What take() fills, item and scratch (the scalars once the action's size is known).
    rows = (steps_per_item, num_lanes)
    self._observations = np.empty((2, *rows, *observation.shape[1:]), observation.dtype)
    self._scalars: Optional[np.ndarray] = None
    self._terms = np.empty((n_step, *rows))  # float64, as NStepAccumulator's
    self._alive_terminal = np.empty((n_step, *rows), bool)
    self._no_bootstrap, self._steps = np.empty(rows, bool), np.empty(rows, np.int64)
    self._next_rows = np.empty(rows, np.int64)
    self.size = 0  # steps added since the last take

  def add(self, action: np.ndarray, step: BatchStep) -> None:
    """Records a_t and the step it led to (at most K steps between two takes)."""
    if self._actions is None:
      self._start_actions(action)
    j = self._n - 1 + self._block * self._k + self.size
    self._actions[j] = action
    self._rewards[j] = step.reward
    self._ended[j] = step.ended
    self._terminal[j] = step.terminated
    self._started[j] = step.started
    self._obs[j + 1] = step.observation
    self.size += 1

  def _start_actions(self, action: np.ndarray) -> None:
    """The actions' buffer (in the actions' dtype), and the item's scalars once their size is
    known; each block's actions as the scalars' [A, K, N] layout (views)."""
    k_rows, lanes = self._k, self._num_lanes
    self._actions = np.zeros((len(self._rewards), *action.shape), action.dtype)
    self._action_size = size = _action_size(action.shape[1:])
    self._scalars = np.empty((size + 3, k_rows, lanes), np.float32)
    self._action_blocks = [
        np.moveaxis(self._actions[b * k_rows:(b + 1) * k_rows].reshape(k_rows, lanes, size), -1, 0)
        for b in range(self._blocks)]

  def take(self) -> Dict[str, np.ndarray]:
    """The last K steps' rows as an item's two columns (`pack`'s layout); keeps the n-1 steps
    the next rows need. The arrays are refilled by the next take."""
    if self.size != self._k:
      raise ValueError(f"take() after {self.size} steps; a block has {self._k}")
    k_rows, size, first = self._k, self._action_size, self._block * self._k
    rows = slice(first, first + k_rows)
    reward_windows, ended, terminal_windows = self._windows[self._block]
    # alive[k]: the episode of the row's step has not ended in the k steps after it
    # (a > b is a & ~b for booleans: one ufunc a window).
    alive = self._alive
    for k in range(1, self._n):
      np.greater(alive[k - 1], ended[k - 1], out=alive[k])
    terms = np.multiply(self._gamma_powers, reward_windows, out=self._terms)
    terms *= alive
    # The item's columns, each field a contiguous block filled in place (no packing copy).
    observations, scalars = self._observations, self._scalars
    ret = scalars[size]
    ret[...] = terms[0]
    for term in terms[1:]:  # summed into float32 in the same order as NStepAccumulator._emit
      ret += term
    steps = np.add.reduce(alive, axis=0, out=self._steps)
    discount = scalars[size + 1]
    self._discounts.take(steps, out=discount)
    np.logical_and(alive, terminal_windows, out=self._alive_terminal)
    np.logical_or.reduce(self._alive_terminal, axis=0, out=self._no_bootstrap)
    np.copyto(discount, 0.0, where=self._no_bootstrap)
    scalars[:size] = self._action_blocks[self._block]
    np.logical_not(self._started[rows], out=scalars[size + 2])
    observations[0] = self._obs[rows]
    next_rows = np.multiply(steps, self._num_lanes, out=self._next_rows)
    next_rows += self._row_lane[self._block]
    self._obs_flat.take(next_rows, axis=0, out=observations[1])
    self._block += 1
    if self._block == self._blocks:
      last = self._blocks * k_rows
      for buf in (self._actions, self._rewards, self._ended, self._terminal, self._started):
        buf[:self._n - 1] = buf[last:]
      self._obs[:self._n] = self._obs[last:]
      self._block = 0
    self.size = 0
    return {"observations": observations, "scalars": scalars}


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
