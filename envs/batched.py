"""Batched environments for actors and evaluators, with TF-Agents specs.

A `BatchedEnv` steps `num_envs` lanes together. Both back ends reset a finished
lane on the step *after* the one that ended it (gymnasium 1.x vector envs'
NEXT_STEP autoreset, TF-Agents' auto-resetting py environments): that step
returns the new episode's first observation and carries no transition, so
`BatchStep.started` marks it and writers must skip it.
"""

import dataclasses
from typing import Optional, Sequence

import numpy as np
from tf_agents.specs import array_spec


@dataclasses.dataclass
class BatchStep:
  """What one batched step returns; every array has the lanes first.

  Attributes:
    observation: Observations after the step, [N, ...].
    reward: Rewards of the step, [N].
    terminated: The episode ended in a terminal state (no bootstrapping), [N].
    truncated: The episode was cut (time limit; bootstrap from observation), [N].
    started: The lane was reset by this step; it carries no transition, [N].
    ended: terminated | truncated, [N]; computed when not given (an env that has
      it already passes it: actors read it several times a step).
  """

  observation: np.ndarray
  reward: np.ndarray
  terminated: np.ndarray
  truncated: np.ndarray
  started: np.ndarray
  ended: Optional[np.ndarray] = None

  def __post_init__(self):
    if self.ended is None:
      self.ended = self.terminated | self.truncated


def clip_rewards(step: BatchStep) -> BatchStep:
  """The same step with each reward replaced by its sign (what actors train on)."""
  return dataclasses.replace(step, reward=np.sign(step.reward).astype(np.float32))


class BatchedEnv:
  """Interface of the batched environments; see the module docstring."""

  num_envs: int
  observation_spec: array_spec.ArraySpec
  action_spec: array_spec.BoundedArraySpec

  def reset(self, seed: Optional[int] = None) -> np.ndarray:
    """Resets every lane (lane i gets seed + i) and returns [N, ...] observations."""
    raise NotImplementedError

  def step(self, actions: np.ndarray) -> BatchStep:
    """Steps every lane with its action."""
    raise NotImplementedError

  def render(self) -> Optional[Sequence[np.ndarray]]:
    """RGB frames of every lane, when made with render=True."""
    raise NotImplementedError

  def close(self) -> None:
    raise NotImplementedError


class GymnasiumBatchedEnv(BatchedEnv):
  """A gymnasium vector env (its own vectorised version where one exists)."""

  def __init__(self, env_id: str, num_envs: int, max_episode_steps: Optional[int] = None,
               render: bool = False, wrappers: Optional[Sequence] = None,
               make_kwargs: Optional[dict] = None):
    import gymnasium  # pylint: disable=g-import-not-at-top
    kwargs = dict(make_kwargs or {})
    if wrappers:  # per-environment wrappers need gymnasium's own vector env
      kwargs.update(vectorization_mode="sync", wrappers=list(wrappers))
    if max_episode_steps is not None:
      kwargs["max_episode_steps"] = max_episode_steps
    if render:
      kwargs["render_mode"] = "rgb_array"
    self._env = gymnasium.make_vec(env_id, num_envs=num_envs, **kwargs)
    mode = self._env.metadata.get("autoreset_mode")
    if mode is not None and mode != gymnasium.vector.AutoresetMode.NEXT_STEP:
      raise ValueError(f"{env_id}: vector env autoresets with {mode}, Reverie expects NEXT_STEP")
    self.num_envs = num_envs
    self.observation_spec = space_to_spec(self._env.single_observation_space, "observation")
    self.action_spec = space_to_spec(self._env.single_action_space, "action")
    self._done = np.zeros(num_envs, bool)

  def reset(self, seed=None):
    observation, _ = self._env.reset(seed=seed)
    self._done = np.zeros(self.num_envs, bool)  # the last step handed out its array as `ended`
    return np.asarray(observation, self.observation_spec.dtype)

  def step(self, actions):
    observation, reward, terminated, truncated, _ = self._env.step(actions)
    started = self._done.copy()
    self._done = np.logical_or(terminated, truncated)
    return BatchStep(np.asarray(observation, self.observation_spec.dtype),
                     np.asarray(reward, np.float32), np.asarray(terminated, bool),
                     np.asarray(truncated, bool), started, self._done)

  def render(self):
    return self._env.render()

  def close(self):
    self._env.close()


class LegacyGymBatchedEnv(BatchedEnv):
  """A legacy gym (<= 0.23) environment through TF-Agents' suite_gym."""

  def __init__(self, env_id: str, num_envs: int, max_episode_steps: Optional[int] = None,
               render: bool = False):
    from tf_agents.environments import batched_py_environment  # pylint: disable=g-import-not-at-top
    from tf_agents.environments import suite_gym  # pylint: disable=g-import-not-at-top
    del render  # suite_gym environments render through env.render('rgb_array').
    self._envs = [suite_gym.load(env_id, max_episode_steps=max_episode_steps or None)
                  for _ in range(num_envs)]
    self._env = batched_py_environment.BatchedPyEnvironment(self._envs, multithreading=False)
    self.num_envs = num_envs
    spec = self._env.observation_spec()
    self.observation_spec = array_spec.ArraySpec(spec.shape, np.float32, "observation") \
        if np.issubdtype(spec.dtype, np.floating) else spec
    self.action_spec = self._env.action_spec()

  def reset(self, seed=None):
    if seed is not None:
      for i, env in enumerate(self._envs):
        env.seed(seed + i)
    return np.asarray(self._env.reset().observation, self.observation_spec.dtype)

  def step(self, actions):
    time_step = self._env.step(np.asarray(actions, self.action_spec.dtype))
    last = time_step.step_type == 2
    return BatchStep(np.asarray(time_step.observation, self.observation_spec.dtype),
                     np.asarray(time_step.reward, np.float32),
                     np.logical_and(last, time_step.discount == 0),
                     np.logical_and(last, time_step.discount > 0),
                     time_step.step_type == 0)

  def render(self):
    return [env.render("rgb_array") for env in self._envs]

  def close(self):
    self._env.close()


def space_to_spec(space, name: str) -> array_spec.ArraySpec:
  """A gymnasium Box or Discrete space as a TF-Agents spec (float32 for Box)."""
  from gymnasium import spaces  # pylint: disable=g-import-not-at-top
  if isinstance(space, spaces.Discrete):
    return array_spec.BoundedArraySpec((), np.int64, int(space.start),
                                       int(space.start + space.n - 1), name)
  if isinstance(space, spaces.Box):
    dtype = np.float32 if np.issubdtype(space.dtype, np.floating) else space.dtype
    low, high = space.low.astype(dtype), space.high.astype(dtype)
    if low.size > 1 and (low == low.flat[0]).all() and (high == high.flat[0]).all():
      low, high = low.flat[0], high.flat[0]  # pixels: one bound, not one per pixel
    return array_spec.BoundedArraySpec(space.shape, dtype, low, high, name)
  raise ValueError(f"{name} space {space} is not supported: Reverie takes Box and Discrete spaces")
