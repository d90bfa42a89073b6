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
  """

  id: str = "CartPole-v1"
  max_episode_steps: Optional[int] = None

  def __post_init__(self):
    if not self.id.strip():
      raise ValueError("id: must name an environment, e.g. CartPole-v1")
    if self.max_episode_steps is not None and self.max_episode_steps < 1:
      raise ValueError(
          f"max_episode_steps: must be >= 1 or null, got {self.max_episode_steps}")
