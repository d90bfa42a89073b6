"""The actors' numpy forward pass must give the Q-network's own values and actions."""

import numpy as np
import tensorflow as tf
from tf_agents.networks import q_network
from tf_agents.specs import tensor_spec

from reverie.agents.dqn import agent as dqn_agent
from reverie.agents.dqn.config import DqnConfig

OBS = tensor_spec.TensorSpec([4], tf.float32, "observation")
ACTIONS = tensor_spec.BoundedTensorSpec([], tf.int64, 0, 2, "action")


def _network(fc=(32, 16)):
  network = dqn_agent.make_q_network(DqnConfig(fc_layer_params=list(fc)), OBS, ACTIONS)
  network.create_variables()
  return network


def _observations(n=64, seed=0):
  return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


def test_mlp_q_values_match_the_tf_network():
  network = _network()
  policy = dqn_agent.EpsilonGreedy(network, OBS, ACTIONS, seed=0)
  assert policy.uses_numpy
  obs = _observations()
  expected = network(obs)[0].numpy()
  np.testing.assert_allclose(policy.q_values(obs), expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(policy.act(obs, 0.0), expected.argmax(-1))


def test_refresh_picks_up_new_weights_and_nothing_changes_without_it():
  network = _network()
  policy = dqn_agent.EpsilonGreedy(network, OBS, ACTIONS, seed=0)
  obs = _observations()
  before = policy.q_values(obs)
  for variable in network.variables:
    variable.assign(variable + 0.5)
  np.testing.assert_array_equal(policy.q_values(obs), before)  # a snapshot until refresh()
  policy.refresh()
  np.testing.assert_allclose(policy.q_values(obs), network(obs)[0].numpy(), rtol=1e-5, atol=1e-5)


def test_other_networks_keep_the_tf_path():
  image = tensor_spec.TensorSpec([8, 8, 1], tf.float32, "observation")
  network = q_network.QNetwork(image, ACTIONS, conv_layer_params=[(4, 3, 1)], fc_layer_params=(8,))
  network.create_variables()
  policy = dqn_agent.EpsilonGreedy(network, image, ACTIONS, seed=0)
  assert not policy.uses_numpy
  obs = np.random.default_rng(1).normal(size=(5, 8, 8, 1)).astype(np.float32)
  np.testing.assert_array_equal(policy.act(obs, 0.0), network(obs)[0].numpy().argmax(-1))


def test_exploration_covers_every_action_in_the_spec_dtype():
  policy = dqn_agent.EpsilonGreedy(_network(), OBS, ACTIONS, seed=3)
  actions = policy.act(_observations(3000), 1.0)
  assert actions.dtype == np.int64
  counts = np.bincount(actions, minlength=3)
  assert counts.min() > 800, counts  # uniform over 3 actions: ~1000 each
