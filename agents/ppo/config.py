"""PPO hyperparameters (Schulman et al. 2017, clipped objective, GAE)."""

import dataclasses
from typing import List, Optional

from reverie.agents.config_checks import check as _check
from reverie.agents.config_checks import conv_layers_ok


@dataclasses.dataclass
class PpoConfig:
  """Proximal policy optimization with a clipped objective.

  Attributes:
    kind: The algorithm; this schema is the one for ppo.
    actor_fc_layers: Hidden layer sizes of the policy MLP (tanh).
    value_fc_layers: Hidden layer sizes of the value MLP (tanh; ReLU after conv layers).
    conv_layer_params: Pixel observations: [filters, kernel, stride] of each conv layer of the actor's and the value network's torso.
    learning_rate: Adam learning rate.
    anneal_learning_rate: Decay the learning rate linearly to 0 over the run's run.max_env_steps.
    gamma: Discount factor per environment step.
    gae_lambda: Lambda of generalized advantage estimation.
    clip_ratio: Epsilon of the clipped importance ratio.
    entropy_coef: Weight of the entropy bonus.
    value_loss_coef: Weight of the value loss.
    num_epochs: Passes over each policy version's data.
    rollout_steps: Vector steps each actor collects with one policy version.
    normalize_observations: Normalize observations with running statistics (learner-updated, used by actors).
    normalize_rewards: Scale rewards by running statistics of their magnitude.
    gradient_clipping: Clip gradients to this global norm (null = no clipping).
    max_policy_lag_versions: Train on data at most this many policy versions old (0 = on-policy only).
    initial_action_std: Box actions: the policy's starting standard deviation, as a fraction of half the action range.
  """

  kind: str = "ppo"
  actor_fc_layers: List[int] = dataclasses.field(default_factory=lambda: [64, 64])
  value_fc_layers: List[int] = dataclasses.field(default_factory=lambda: [64, 64])
  conv_layer_params: List[List[int]] = dataclasses.field(
      default_factory=lambda: [[32, 8, 4], [64, 4, 2], [64, 3, 1]])
  learning_rate: float = 3e-4
  anneal_learning_rate: bool = False
  gamma: float = 0.99
  gae_lambda: float = 0.95
  clip_ratio: float = 0.2
  entropy_coef: float = 0.0
  value_loss_coef: float = 0.5
  num_epochs: int = 10
  rollout_steps: int = 32
  normalize_observations: bool = True
  normalize_rewards: bool = False
  gradient_clipping: Optional[float] = 0.5
  max_policy_lag_versions: int = 0
  initial_action_std: float = 0.5

  def __post_init__(self):
    _check(self.kind == "ppo", "kind", f"must be ppo in this schema, got {self.kind}")
    for name in ("actor_fc_layers", "value_fc_layers"):
      layers = list(getattr(self, name))
      _check(all(n > 0 for n in layers), name, f"layer sizes must be > 0, got {layers}")
    _check(conv_layers_ok(self.conv_layer_params), "conv_layer_params",
           f"each layer must be [filters, kernel, stride] > 0, got {list(self.conv_layer_params)}")
    _check(self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
    for name in ("gamma", "gae_lambda"):
      value = getattr(self, name)
      _check(0 <= value <= 1, name, f"must be in [0, 1], got {value}")
    _check(0 < self.clip_ratio < 1, "clip_ratio", f"must be in (0, 1), got {self.clip_ratio}")
    for name in ("entropy_coef", "value_loss_coef"):
      value = getattr(self, name)
      _check(value >= 0, name, f"must be >= 0, got {value}")
    _check(self.num_epochs >= 1, "num_epochs", f"must be >= 1, got {self.num_epochs}")
    _check(self.rollout_steps >= 2, "rollout_steps", f"must be >= 2, got {self.rollout_steps}")
    _check(self.gradient_clipping is None or self.gradient_clipping > 0,
           "gradient_clipping", f"must be > 0 or null, got {self.gradient_clipping}")
    _check(self.initial_action_std > 0, "initial_action_std",
           f"must be > 0, got {self.initial_action_std}")
    _check(self.max_policy_lag_versions >= 0, "max_policy_lag_versions",
           f"must be >= 0, got {self.max_policy_lag_versions}")
