"""Environment config: which simulator the actors and the evaluator step."""

import dataclasses
from typing import Optional


@dataclasses.dataclass
class EnvConfig:
  """Where experience comes from.

  Attributes:
    id: A gymnasium id (CartPole-v1), a legacy gym id (gym:CartPole-v1) or a
      user's own environment as module:EnvId.
    max_episode_steps: Cut episodes at this many steps (null keeps the
      environment's own limit).
    atari_preprocessing: Standard Atari preprocessing and frame stacking (null = on for ALE/ ids).
    noop_max: Atari: at most this many no-op actions after a reset (random start states).
    frame_skip: Atari: emulator frames per env step, the last two max-pooled.
    screen_size: Atari: observed frames are resized to screen_size x screen_size grayscale.
    frame_stack: Atari: observations stack this many latest frames ([frame_stack, size, size] uint8).
    terminal_on_life_loss: Atari: a lost life ends the actors' episode (training only; eval plays whole games).
    clip_rewards: Actors train on the sign of each reward (eval and episode_return see raw rewards).
  """

  id: str = "CartPole-v1"
  max_episode_steps: Optional[int] = None
  atari_preprocessing: Optional[bool] = None
  noop_max: int = 30
  frame_skip: int = 4
  screen_size: int = 84
  frame_stack: int = 4
  terminal_on_life_loss: bool = False
  clip_rewards: bool = False

  def __post_init__(self):
    if not self.id.strip():
      raise ValueError("id: must name an environment, e.g. CartPole-v1")
    if self.max_episode_steps is not None and self.max_episode_steps < 1:
      raise ValueError(
          f"max_episode_steps: must be >= 1 or null, got {self.max_episode_steps}")
    if self.noop_max < 0:
      raise ValueError(f"noop_max: must be >= 0, got {self.noop_max}")
    for name in ("frame_skip", "screen_size", "frame_stack"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")

  @property
  def preprocessed(self) -> bool:
    """Whether the Atari preprocessing applies to this id."""
    from reverie.envs import atari  # pylint: disable=g-import-not-at-top
    if self.atari_preprocessing is None:
      return atari.is_atari(self.id)
    return self.atari_preprocessing
