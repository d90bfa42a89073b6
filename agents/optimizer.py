"""The agents' optimizer: Adam in Keras' legacy implementation, one fused kernel per variable.

Keras 2.15's Adam updates each variable with about ten small ops, its legacy
Adam with one `ResourceApplyAdam`. For the small networks of classic-control
tasks the ops are the cost: timed alone here, a 64x64 MLP's train step ran
13.6k steps/s with the legacy Adam against 8.7k (batch 128, one thread) and
was traced in 0.13 s against 0.22 s; PPO CartPole's learner
(benchmarks/learner_throughput.py) ran 15-50 % more train steps per second.
Both follow Kingma & Ba with the same epsilon placement, and both clip after
the replicas' gradients are summed.

TF-Agents' PPOAgent warns that it supports only the new Keras optimizers; it
calls nothing but `apply_gradients` and reads `learning_rate`, which the
legacy Adam has, so that warning is filtered out here.
"""

import logging
from typing import Sequence

import tensorflow as tf


class _NoNewOptimizerWarning(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Only tf.keras.optimizers.Optimiers are well supported")


logging.getLogger("absl").addFilter(_NoNewOptimizerWarning())


class Adam(tf.keras.optimizers.legacy.Adam):
  """The legacy Adam whose `learning_rate` is the rate of the next update, as the new one's.

  `learning_rate` is given as a float or a Keras schedule of the update count;
  the legacy optimizer would hand a schedule back as it is, which TF-Agents'
  PPOAgent cannot write as a summary. `clipnorm` clips each variable's
  gradient, `global_clipnorm` all of them together.
  """

  @property
  def learning_rate(self) -> tf.Tensor:
    return self._decayed_lr(tf.float32)


def create_slots(optimizer: Adam, variables: Sequence[tf.Variable]) -> None:
  """Makes the optimizer's step counter and slots now, as the first update would.

  TF-Agents' Learner would otherwise trace a whole train step on dummy data to
  make them, and a checkpoint restored before the first update finds them.
  """
  optimizer._create_all_weights(variables)  # pylint: disable=protected-access
