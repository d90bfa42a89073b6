"""Turns `env.id` into a batched environment.

`CartPole-v1` is a gymnasium id, `gym:CartPole-v1` a legacy gym id (TF-Agents'
suite_gym) and `module:EnvId` a user's own gymnasium environment: gymnasium
imports the module, whose import registers the id. `ALE/Pong-v5` and the
other ale-py games get the Atari preprocessing of `env.*` (envs/atari.py).
"""

import contextlib
import io
import os
import sys
from typing import Optional, Tuple

LEGACY_PREFIX = "gym:"


class UnknownEnvironment(ValueError):
  """`env.id` names nothing that can be made; the message says why in one line."""


def env_spaces(env_id: str, env_config=None) -> Tuple[object, object]:
  """(observation_space, action_space) of one environment, without TensorFlow.

  Args:
    env_id: The environment's id.
    env_config: Its `EnvConfig` (preprocessing keys); None takes the defaults.

  Raises:
    UnknownEnvironment: the id or its module is not usable.
  """
  with _explained(env_id):
    if env_id.startswith(LEGACY_PREFIX):
      gym = import_legacy_gym()
      env = gym.make(env_id[len(LEGACY_PREFIX):])
    else:
      env = make_gymnasium_env(env_id, _env_config(env_id, env_config))
    spaces = env.observation_space, env.action_space
    env.close()
    return spaces


def make_batched_env(env_id: str, num_envs: int, max_episode_steps: Optional[int] = None,
                     render: bool = False, env_config=None, training: bool = False):
  """Makes `num_envs` lanes of `env_id` as a `BatchedEnv`.

  Args:
    env_id: The environment's id.
    num_envs: Lanes.
    max_episode_steps: Cut episodes at this many steps (None: the environment's limit).
    render: Make it with render_mode='rgb_array'.
    env_config: Its `EnvConfig` (preprocessing keys); None takes the defaults.
    training: Actors' environments (terminal on life loss applies to them only).

  Raises:
    UnknownEnvironment: the id, module or space is not usable.
  """
  from reverie.envs import batched  # pylint: disable=g-import-not-at-top
  with _explained(env_id):
    if env_id.startswith(LEGACY_PREFIX):
      import_legacy_gym()
      return batched.LegacyGymBatchedEnv(env_id[len(LEGACY_PREFIX):], num_envs,
                                         max_episode_steps, render)
    env_config = _env_config(env_id, env_config)
    from reverie.envs import atari  # pylint: disable=g-import-not-at-top
    if atari.is_atari(env_id):
      atari.register_ale()
    if not env_config.preprocessed:
      return batched.GymnasiumBatchedEnv(env_id, num_envs, max_episode_steps, render)
    return batched.GymnasiumBatchedEnv(env_id, num_envs, max_episode_steps, render,
                                       wrappers=atari.wrappers(env_config, training),
                                       make_kwargs=atari.make_kwargs())


def make_gymnasium_env(env_id: str, env_config):
  """One gymnasium environment of `env_id`, preprocessed as `env_config` says."""
  import gymnasium  # pylint: disable=g-import-not-at-top
  from reverie.envs import atari  # pylint: disable=g-import-not-at-top
  if atari.is_atari(env_id):
    atari.register_ale()
  if not env_config.preprocessed:
    return gymnasium.make(env_id)
  env = gymnasium.make(env_id, **atari.make_kwargs())
  for wrapper in atari.wrappers(env_config, training=False):
    env = wrapper(env)
  return env


def _env_config(env_id: str, env_config):
  from reverie.envs.config import EnvConfig  # pylint: disable=g-import-not-at-top
  if env_config is None:
    return EnvConfig(id=env_id)
  return env_config


def render_fps(env_id: str) -> Optional[int]:
  """Frames per second the environment renders at (its metadata's render_fps), or None.

  Raises:
    UnknownEnvironment: the id or its module is not usable.
  """
  with _explained(env_id):
    if env_id.startswith(LEGACY_PREFIX):
      env = import_legacy_gym().make(env_id[len(LEGACY_PREFIX):])
    else:
      env = make_gymnasium_env(env_id, _env_config(env_id, None))
    metadata = env.metadata or {}
    env.close()
  fps = metadata.get("render_fps", metadata.get("video.frames_per_second"))
  return int(fps) if fps else None


def import_legacy_gym():
  """gym 0.23, without the banner it prints to stderr on import."""
  with contextlib.redirect_stderr(io.StringIO()):
    import gym  # pylint: disable=g-import-not-at-top
  return gym


@contextlib.contextmanager
def _explained(env_id: str):
  if os.getcwd() not in sys.path and "" not in sys.path:
    sys.path.append(os.getcwd())  # module:EnvId may name a module in the working directory.
  try:
    yield
  except ModuleNotFoundError as e:
    raise UnknownEnvironment(
        f"{env_id}: cannot import module {e.name or env_id.split(':')[0]!r}; put it in the "
        "working directory or on PYTHONPATH") from None
  except Exception as e:  # gymnasium and gym raise several error types for a bad id.
    if type(e).__module__.split(".")[0] not in ("gymnasium", "gym") and not isinstance(e, ValueError):
      raise
    message = " ".join(str(e).split("In call to configurable")[0].split())
    raise UnknownEnvironment(f"{env_id}: {message}") from None
