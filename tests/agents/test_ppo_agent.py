"""The PPO agent: Box-action policy spread and bounds, learning-rate schedule, time-limit returns."""

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
  optimizer = agent._optimizer  # pylint: disable=protected-access
  rates = []
  for step in (0, 50, 200, 300):  # the rate of the update after `step` updates
    optimizer.iterations.assign(step)
    rates.append(float(optimizer.learning_rate))
  np.testing.assert_allclose(rates, [1e-3, 7.5e-4, 0.0, 0.0], atol=1e-9)
  constant = ppo_agent.make_agent(PpoConfig(learning_rate=1e-3), ts.time_step_spec(OBS), actions,
                                  tf.Variable(0, dtype=tf.int64), total_updates=200)
  assert float(constant._optimizer.learning_rate) == pytest.approx(1e-3)  # pylint: disable=protected-access


@pytest.mark.parametrize("normalize_rewards", [False, True])
def test_a_time_limit_bootstraps_from_the_cut_off_state_and_a_terminal_state_does_not(
    normalize_rewards):
  # pylint: disable=protected-access
  gamma, lam = 0.9, 0.8
  actions = tensor_spec.BoundedTensorSpec([], tf.int64, 0, 1, "action")
  config = PpoConfig(gamma=gamma, gae_lambda=lam, normalize_observations=False,
                     normalize_rewards=normalize_rewards)
  agent = ppo_agent.make_acting_agent(config, OBS, actions)
  # One lane, 4 transitions; the episode ends after transition 1 (LAST), then a reset step.
  last, mid, first = ts.StepType.LAST, ts.StepType.MID, ts.StepType.FIRST
  rewards = tf.constant([[1.0, 2.0, 0.0, 3.0]])
  values = tf.constant([[0.5, 1.5, 4.0, 0.25, 2.0]])  # V(o_0) .. V(o_4)
  step = lambda discount_1: ts.TimeStep(
      step_type=tf.constant([[mid, last, first, mid]]), reward=rewards,
      discount=tf.constant([[1.0, discount_1, 1.0, 1.0]]), observation=tf.zeros([1, 4, 3]))
  r = rewards.numpy()[0]
  if normalize_rewards:  # values are in normalized units: the bootstrap is added after scaling
    agent._reward_normalizer.update(tf.constant([[1.0, -2.0, 4.0, 0.5]]))
    r = agent._reward_normalizer.normalize(
        rewards, center_mean=False, clip_value=agent._reward_norm_clipping).numpy()[0]
    assert not np.allclose(r, rewards.numpy()[0])
  truncated_returns, truncated = agent.compute_return_and_advantage(step(1.0), values)
  terminal_returns, terminal = agent.compute_return_and_advantage(step(0.0), values)
  base = super(ppo_agent.TimeLimitPPOClipAgent, agent).compute_return_and_advantage
  base_returns, base_terminal = base(step(0.0), values)
  # A terminal end is TF-Agents' own, bit for bit; a time limit differs only where it cut.
  np.testing.assert_array_equal(terminal.numpy(), base_terminal.numpy())
  np.testing.assert_array_equal(terminal_returns.numpy(), base_returns.numpy())
  v = values.numpy()[0]
  delta_1 = r[1] + gamma * v[2] - v[1]  # bootstraps from V(o_2), the cut-off state
  assert truncated.numpy()[0, 1] == pytest.approx(delta_1, rel=1e-6)
  assert terminal.numpy()[0, 1] == pytest.approx(r[1] - v[1], rel=1e-6)
  assert truncated.numpy()[0, 0] == pytest.approx(r[0] + gamma * v[1] - v[0]
                                                   + gamma * lam * delta_1, rel=1e-6)
  np.testing.assert_array_equal(truncated.numpy()[0, 2:], terminal.numpy()[0, 2:])
  np.testing.assert_allclose(truncated_returns.numpy(), truncated.numpy() + v[:-1], rtol=1e-6)
