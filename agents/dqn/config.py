"""DQN hyperparameters (Mnih et al. 2015, with n-step and double DQN options)."""

import dataclasses
from typing import List, Optional

from reverie.agents.config_checks import check as _check
from reverie.agents.config_checks import conv_layers_ok


@dataclasses.dataclass
class DqnConfig:
  """Deep Q-learning.

  Attributes:
    kind: The algorithm; this schema is the one for dqn.
    fc_layer_params: Hidden layer sizes of the Q-network MLP (after the conv layers for pixels).
    conv_layer_params: Pixel observations: [filters, kernel, stride] of each conv layer (Nature DQN by default).
    learning_rate: Adam learning rate.
    gamma: Discount factor per environment step.
    n_step_update: Transitions carry this many rewards before bootstrapping.
    target_update_period: Train steps between target network updates.
    target_update_tau: Soft update weight of the target network (1 = copy).
    double_dqn: Pick the next action with the online network (van Hasselt 2016).
    gradient_clipping: Clip each variable's gradient to this norm (null = no clipping).
    epsilon_start: Exploration rate of the actors at the first env step.
    epsilon_end: Exploration rate after the decay.
    epsilon_decay_steps: Env steps (all actors together) of linear decay.
  """

  kind: str = "dqn"
  fc_layer_params: List[int] = dataclasses.field(default_factory=lambda: [64, 64])
  conv_layer_params: List[List[int]] = dataclasses.field(
      default_factory=lambda: [[32, 8, 4], [64, 4, 2], [64, 3, 1]])
  learning_rate: float = 1e-3
  gamma: float = 0.99
  n_step_update: int = 1
  target_update_period: int = 100
  target_update_tau: float = 1.0
  double_dqn: bool = True
  gradient_clipping: Optional[float] = 10.0
  epsilon_start: float = 1.0
  epsilon_end: float = 0.05
  epsilon_decay_steps: int = 10_000

  def __post_init__(self):
    _check(self.kind == "dqn", "kind", f"must be dqn in this schema, got {self.kind}")
    _check(all(n > 0 for n in self.fc_layer_params), "fc_layer_params",
           f"layer sizes must be > 0, got {list(self.fc_layer_params)}")
    _check(conv_layers_ok(self.conv_layer_params), "conv_layer_params",
           f"each layer must be [filters, kernel, stride] > 0, got {list(self.conv_layer_params)}")
    _check(self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
    _check(0 <= self.gamma <= 1, "gamma", f"must be in [0, 1], got {self.gamma}")
    _check(self.n_step_update >= 1, "n_step_update", f"must be >= 1, got {self.n_step_update}")
    _check(self.target_update_period >= 1, "target_update_period",
           f"must be >= 1, got {self.target_update_period}")
    _check(0 < self.target_update_tau <= 1, "target_update_tau",
           f"must be in (0, 1], got {self.target_update_tau}")
    _check(self.gradient_clipping is None or self.gradient_clipping > 0,
           "gradient_clipping", f"must be > 0 or null, got {self.gradient_clipping}")
    for name in ("epsilon_start", "epsilon_end"):
      value = getattr(self, name)
      _check(0 <= value <= 1, name, f"must be in [0, 1], got {value}")
    _check(self.epsilon_decay_steps >= 1, "epsilon_decay_steps",
           f"must be >= 1, got {self.epsilon_decay_steps}")
