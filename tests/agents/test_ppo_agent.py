"""The PPO agent's Box-action policy: starting spread from config, means inside the bounds."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from reverie.agents.ppo import agent as ppo_agent
from reverie.agents.ppo.config import PpoConfig

OBS = tensor_spec.TensorSpec([3], tf.float32, "observation")


def _distribution(agent, observations):
  batch = len(observations)
  time_step = ts.TimeStep(tf.fill([batch], ts.StepType.MID), tf.zeros([batch]),
                          tf.ones([batch]), observations)
  return agent.collect_policy.distribution(time_step).action


@pytest.mark.parametrize("fraction", [0.5, 0.1])
def test_initial_std_is_a_fraction_of_each_half_range(fraction):
  actions = tensor_spec.BoundedTensorSpec([2], tf.float32, [-2.0, 0.0], [2.0, 1.0], "action")
  config = PpoConfig(initial_action_std=fraction, normalize_observations=False)
  agent = ppo_agent.make_acting_agent(config, OBS, actions)
  observations = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
  distribution = _distribution(agent, observations)
  np.testing.assert_allclose(distribution.stddev().numpy(),
                             np.tile([2.0 * fraction, 0.5 * fraction], (8, 1)), rtol=1e-5)
  mean = distribution.mean().numpy()
  assert np.all(mean >= [-2.0, 0.0]) and np.all(mean <= [2.0, 1.0])


def test_initial_std_must_be_positive():
  with pytest.raises(ValueError, match="initial_action_std: must be > 0"):
    PpoConfig(initial_action_std=0.0)


def test_annealed_learning_rate_falls_linearly_to_zero_over_the_run():
  actions = tensor_spec.BoundedTensorSpec([], tf.int64, 0, 1, "action")
  config = PpoConfig(learning_rate=1e-3, anneal_learning_rate=True, normalize_observations=False)
  agent = ppo_agent.make_agent(config, ts.time_step_spec(OBS), actions,
                               tf.Variable(0, dtype=tf.int64), total_updates=200)
  schedule = agent._optimizer._learning_rate  # pylint: disable=protected-access
  rates = [float(schedule(step)) for step in (0, 50, 200, 300)]
  np.testing.assert_allclose(rates, [1e-3, 7.5e-4, 0.0, 0.0], atol=1e-9)
  constant = ppo_agent.make_agent(PpoConfig(learning_rate=1e-3), ts.time_step_spec(OBS), actions,
                                  tf.Variable(0, dtype=tf.int64), total_updates=200)
  assert float(constant._optimizer.learning_rate) == pytest.approx(1e-3)  # pylint: disable=protected-access
