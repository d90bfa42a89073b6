"""A PPO actor's numpy policy must act, and record, as TF-Agents' own PPO policies do."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from reverie.agents.ppo import agent as ppo_agent
from reverie.agents.ppo.config import PpoConfig

OBS = tensor_spec.TensorSpec([4], tf.float32, "observation")
ACTIONS = tensor_spec.BoundedTensorSpec([], tf.int64, 0, 2, "action")


def _agent(**config):
  config = PpoConfig(**{"actor_fc_layers": [32, 16], "value_fc_layers": [24],
                        "normalize_observations": False, **config})
  agent = ppo_agent.make_acting_agent(config, OBS, ACTIONS, seed=0)
  for variable in ppo_agent.policy_variables(agent):  # leave orthogonal init's tiny logits
    variable.assign(tf.random.stateless_normal(variable.shape, [1, len(variable.name)]) * 0.5)
  return agent


def _observations(n=64, seed=0):
  return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


def _tf_step(policy, obs):
  step_type = tf.fill([len(obs)], ts.StepType.MID)
  time_step = ts.TimeStep(step_type, tf.zeros([len(obs)]), tf.ones([len(obs)]), obs)
  return policy.action(time_step)


def test_collect_info_matches_the_tf_collect_policy():
  agent = _agent()
  policy = ppo_agent.BatchedPolicy(agent, OBS, ACTIONS, collect=True, seed=0)
  assert policy.uses_numpy
  obs = _observations()
  to_env, sampled, info = policy.collect(obs, np.full(len(obs), ts.StepType.MID, np.int32))
  expected = tf.nest.map_structure(lambda t: t.numpy(), _tf_step(agent.collect_policy, obs).info)
  tf.nest.assert_same_structure(info, expected)
  np.testing.assert_allclose(info["dist_params"]["logits"], expected["dist_params"]["logits"],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(info["value_prediction"], expected["value_prediction"],
                             rtol=1e-5, atol=1e-5)
  assert info["value_prediction"].dtype == np.float32 and info["value_prediction"].shape == (64,)
  assert sampled.dtype == np.int64 and np.array_equal(to_env, sampled)


def test_greedy_action_is_the_tf_policy_mode():
  agent = _agent()
  policy = ppo_agent.BatchedPolicy(agent, OBS, ACTIONS, collect=False)
  obs = _observations(256, seed=1)
  np.testing.assert_array_equal(policy.act(obs), _tf_step(agent.policy, obs).action.numpy())


def test_samples_follow_the_softmax_of_the_logits():
  agent = _agent()
  policy = ppo_agent.BatchedPolicy(agent, OBS, ACTIONS, collect=True, seed=5)
  obs = np.repeat(_observations(1, seed=2), 20_000, axis=0)
  actions, _, info = policy.collect(obs, np.full(len(obs), ts.StepType.MID, np.int32))
  logits = info["dist_params"]["logits"][0]
  expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
  observed = np.bincount(actions, minlength=3) / len(actions)
  np.testing.assert_allclose(observed, expected, atol=0.015)  # ~4 standard errors at 20k draws


def test_refresh_picks_up_new_weights_and_nothing_changes_without_it():
  agent = _agent()
  policy = ppo_agent.BatchedPolicy(agent, OBS, ACTIONS, collect=False)
  obs = _observations(256, seed=3)
  before = policy.act(obs)
  for variable in agent.actor_net.variables:
    variable.assign(-variable)
  np.testing.assert_array_equal(policy.act(obs), before)  # a snapshot until refresh()
  policy.refresh()
  after = _tf_step(agent.policy, obs).action.numpy()
  assert not np.array_equal(after, before)
  np.testing.assert_array_equal(policy.act(obs), after)


@pytest.mark.parametrize("allow_numpy", [True, False])
def test_refresh_with_pulled_values_acts_as_the_policy_that_has_them(allow_numpy):
  source, target = _agent(), _agent()
  for variable in ppo_agent.policy_variables(source):
    variable.assign(-variable)
  policy = ppo_agent.BatchedPolicy(target, OBS, ACTIONS, collect=False, allow_numpy=allow_numpy)
  assert policy.uses_numpy == allow_numpy
  obs = _observations(256, seed=4)
  expected = _tf_step(source.policy, obs).action.numpy()
  assert not np.array_equal(policy.act(obs), expected)
  # What launch/actor.py's WeightPuller returns: {variable.ref(): array} of the pulled weights.
  policy.refresh({mine.ref(): theirs.numpy() for mine, theirs in
                  zip(ppo_agent.policy_variables(target), ppo_agent.policy_variables(source))})
  np.testing.assert_array_equal(policy.act(obs), expected)


@pytest.mark.parametrize("case", ["normalized observations", "continuous actions"])
def test_other_policies_keep_the_tf_path(case):
  if case == "normalized observations":
    agent, actions = _agent(normalize_observations=True), ACTIONS
  else:
    actions = tensor_spec.BoundedTensorSpec([1], tf.float32, -2.0, 2.0, "action")
    agent = ppo_agent.make_acting_agent(
        PpoConfig(actor_fc_layers=[8], normalize_observations=False), OBS, actions)
  policy = ppo_agent.BatchedPolicy(agent, OBS, actions, collect=False)
  assert not policy.uses_numpy
  obs = _observations(8)
  expected = _tf_step(agent.policy, obs).action.numpy()  # the mode; a Box one clipped to bounds
  np.testing.assert_allclose(policy.act(obs), np.clip(expected, -2, 2) if case == "continuous actions"
                             else expected, rtol=1e-5)
