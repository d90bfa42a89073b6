"""Atari games through ale-py: registration and the standard preprocessing wrappers.

`ALE/*-v5` ids skip 4 frames and repeat the last action with probability 0.25
(sticky actions, Machado et al. 2018) on their own. Reverie makes them with
`frameskip=1` and lets gymnasium's `AtariPreprocessing` skip frames instead,
max-pooling the last two of every skip (Mnih et al. 2015), so the observation
is 84x84 grayscale uint8; `FrameStackObservation` stacks the last frames on
the first axis ([stack, 84, 84]; an episode's first stack repeats its first frame).
"""

import functools
from typing import Callable, List

ALE_PREFIX = "ALE/"


def is_atari(env_id: str) -> bool:
  """Whether `env_id` is an ale-py game id (ALE/Pong-v5, ...)."""
  return env_id.startswith(ALE_PREFIX)


@functools.cache
def register_ale() -> None:
  """Makes the ALE/ ids known to gymnasium (ale-py's wheels ship the ROMs)."""
  import ale_py  # pylint: disable=g-import-not-at-top
  import gymnasium  # pylint: disable=g-import-not-at-top
  gymnasium.register_envs(ale_py)


def make_kwargs() -> dict:
  """Arguments of gymnasium.make for an ALE id under `AtariPreprocessing`."""
  return {"frameskip": 1}


def wrappers(env_config, training: bool) -> List[Callable]:
  """The per-environment wrappers of `env_config`'s Atari keys, in order.

  `terminal_on_life_loss` applies to training environments only: evaluation
  always plays whole games.
  """
  from gymnasium import wrappers as gym_wrappers  # pylint: disable=g-import-not-at-top
  preprocess = functools.partial(
      gym_wrappers.AtariPreprocessing, noop_max=env_config.noop_max,
      frame_skip=env_config.frame_skip, screen_size=env_config.screen_size,
      terminal_on_life_loss=training and env_config.terminal_on_life_loss,
      grayscale_obs=True, scale_obs=False)
  stack = functools.partial(gym_wrappers.FrameStackObservation,
                            stack_size=env_config.frame_stack, padding_type="reset")
  return [preprocess, stack]
