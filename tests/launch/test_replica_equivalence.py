"""One replica and two give the same training on the same global batches.

The learners are Reverie's own (DqnLearner, PpoLearner: TF-Agents' Learner
and PPOLearner under the strategy from launch/strategy.py) against a real
in-process Reverb server; only their datasets are swapped for fixed batches,
cut for each replica count the way the strategy distributes them (replica r
of step k gets the r-th share of global batch k). Two "devices" are the two
logical CPUs of tests/conftest.py: there is no GPU here. A wrong per-replica
batch, a loss scaled by the local instead of the global batch, gradients
clipped per replica or advantages normalized per replica all fail these tests.
"""

import unittest.mock

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory

from reverie.agents.dqn import transitions
from reverie.agents.ppo import agent as ppo_agent
from reverie.agents.ppo import rollouts
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch import strategy as strategy_lib
from reverie.launch.config import load_config
from reverie.launch.learner import DqnLearner
from reverie.launch.ppo_learner import PpoLearner
from reverie.launch.replay_server import start_replay_server

STEPS = 6
GLOBAL_BATCH = 32


def _specs(env_id="CartPole-v1"):
  env = make_batched_env(env_id, 1)
  specs = env.observation_spec, env.action_spec
  env.close()
  return tensor_spec.from_spec(ts.time_step_spec(specs[0])), tensor_spec.from_spec(specs[1]), specs


_STRATEGIES = {}


def _strategy(replicas: int):
  """One strategy object per kind for the whole process: two MirroredStrategy
  objects would hand out the same collective keys for different tensors."""
  if replicas not in _STRATEGIES:
    kind = {"strategy.kind": "mirrored", "strategy.devices": 2} if replicas == 2 else {}
    config = load_config("dqn_cartpole", [f"{k}={v}" for k, v in kind.items()]).config
    _STRATEGIES[replicas] = strategy_lib.make_strategy(config.strategy)
  strategy = _STRATEGIES[replicas]
  assert strategy.num_replicas_in_sync == replicas
  return strategy


def _weights(variables):
  return [v.numpy().copy() for v in variables]


def _assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


def _assert_train_alike(one, two, initial, train, calls: int, steps: int):
  """Both (learner, variables) start at `initial`, train alike and end at the same weights."""
  (one, one_vars), (two, two_vars) = one, two
  _assert_same(_weights(two_vars), initial)
  for _ in range(calls):
    np.testing.assert_allclose(float(train(one)), float(train(two)), rtol=2e-5)
  assert int(one.train_step.numpy()) == int(two.train_step.numpy()) == steps
  trained = _weights(one_vars)
  assert max(np.abs(a - b).max() for a, b in zip(trained, initial)) > 1e-3, "nothing trained"
  _assert_same(trained, _weights(two_vars))


def _dqn_transitions(rng, count):
  return {
      "observation": rng.normal(size=(count, 4)).astype(np.float32),
      "action": rng.integers(0, 2, count).astype(np.int64),
      "reward": rng.normal(size=count).astype(np.float32),
      "discount": rng.choice([0.0, 0.99], count).astype(np.float32),
      "next_observation": rng.normal(size=(count, 4)).astype(np.float32),
      "valid": rng.random(count) < 0.9,
  }


def _dqn_learner(tmp_path, replicas, data, initial):
  # Gradient clipping tight enough to act on every step: clipping each
  # replica's share instead of the summed gradient would show.
  config = load_config("dqn_cartpole", [
      f"learner.batch_size={GLOBAL_BATCH}", "agent.gradient_clipping=0.05",
      "agent.target_update_period=2", "actor.envs_per_actor=4"]).config
  time_step_spec, action_spec, (observation_spec, raw_action_spec) = _specs()
  run_dir = contract.RunDir(tmp_path / f"dqn{replicas}")
  server = start_replay_server(config, run_dir, None, observation_spec, raw_action_spec)
  learner = DqnLearner(config, run_dir, f"localhost:{server.port}", _strategy(replicas),
                       time_step_spec, action_spec)
  per_replica = GLOBAL_BATCH // replicas
  # Consecutive per-replica batches are the shares of one global batch.
  learner._dataset_fn = lambda: tf.data.Dataset.from_tensor_slices(data).batch(
      per_replica, drop_remainder=True).map(
          lambda item: (transitions.to_transition(item), ()))
  learner.iterator = learner._new_iterator()
  variables = learner.agent._q_network.variables + learner.agent._target_q_network.variables
  if initial is not None:
    for variable, value in zip(variables, initial):
      variable.assign(value)
  return learner, variables, server


def test_dqn_one_and_two_replicas_train_alike(tmp_path):
  data = _dqn_transitions(np.random.default_rng(0), STEPS * GLOBAL_BATCH)
  one, one_vars, server_one = _dqn_learner(tmp_path, 1, data, None)
  initial = _weights(one_vars)
  two, two_vars, server_two = _dqn_learner(tmp_path, 2, data, initial)
  try:
    _assert_train_alike((one, one_vars), (two, two_vars), initial,
                        train=lambda learner: learner.train(2), calls=STEPS // 2, steps=STEPS)
  finally:
    server_one.stop()
    server_two.stop()


def _ppo_config():
  # 4 lanes x 16 steps = 64 env steps per version: two global minibatches of 32.
  return load_config("ppo_cartpole", [
      "actor.envs_per_actor=4", "agent.rollout_steps=16", f"learner.batch_size={GLOBAL_BATCH}",
      "agent.num_epochs=3", "agent.gradient_clipping=0.05", "agent.normalize_observations=false",
      "agent.entropy_coef=0.01"]).config


def _ppo_rollout(agent, config, rng):
  """One rollout of the current policy on random observations, as the actor writes it."""
  steps, lanes = config.agent.rollout_steps + 1, config.actor.envs_per_actor
  observation = tf.constant(rng.normal(size=(steps * lanes, 4)), tf.float32)
  step_type = tf.constant(rng.choice([0, 1, 1, 1, 2], steps * lanes), tf.int32)
  time_step = ts.TimeStep(step_type, tf.zeros(steps * lanes), tf.ones(steps * lanes), observation)
  policy_step = agent.collect_policy.action(time_step, seed=1)
  flat = trajectory.Trajectory(
      step_type=step_type, observation=observation, action=policy_step.action,
      policy_info=policy_step.info,
      next_step_type=tf.constant(rng.choice([1, 1, 2], steps * lanes), tf.int32),
      reward=tf.constant(rng.normal(size=steps * lanes), tf.float32),
      discount=tf.constant(rng.choice([0.0, 1.0, 1.0], steps * lanes), tf.float32))
  return tf.nest.map_structure(lambda x: tf.reshape(x, [steps, lanes, *x.shape[1:]]), flat)


def _ppo_learner(tmp_path, replicas, initial, rollout):
  config = _ppo_config()
  time_step_spec, action_spec, (observation_spec, raw_action_spec) = _specs()
  run_dir = contract.RunDir(tmp_path / f"ppo{replicas}")
  server = start_replay_server(config, run_dir, None, observation_spec, raw_action_spec)
  per_replica = GLOBAL_BATCH // replicas

  def fixed_minibatches(unused_address, unused_table, agent, *unused_args, **unused_kwargs):
    # The same rollout and step order for both learners, for every version (an endless
    # stream, as rollouts.make_dataset gives).
    count = config.agent.rollout_steps * config.actor.envs_per_actor
    steps = rollouts.minibatches(agent, rollout, per_replica,
                                 order=tf.constant(np.random.default_rng(2).permutation(count)))
    return tf.data.Dataset.from_tensor_slices(steps).map(lambda s: (s, ())).repeat()

  with unittest.mock.patch.object(rollouts, "make_dataset", fixed_minibatches):
    learner = PpoLearner(config, run_dir, f"localhost:{server.port}", _strategy(replicas),
                         time_step_spec, action_spec)
  variables = learner.agent._actor_net.variables + learner.agent._value_net.variables
  for variable, value in zip(variables, initial):
    variable.assign(value)
  return learner, variables, server


def test_ppo_one_and_two_replicas_train_alike(tmp_path):
  # The rollout comes from the policy both learners start from.
  config = _ppo_config()
  _, _, (observation_spec, action_spec) = _specs()
  acting = ppo_agent.make_acting_agent(config.agent, observation_spec, action_spec)
  rollout = _ppo_rollout(acting, config, np.random.default_rng(1))
  initial = _weights(acting._actor_net.variables + acting._value_net.variables)
  one, one_vars, server_one = _ppo_learner(tmp_path, 1, initial, rollout)
  two, two_vars, server_two = _ppo_learner(tmp_path, 2, initial, rollout)
  try:
    # Two versions of 3 epochs over 2 global minibatches.
    _assert_train_alike((one, one_vars), (two, two_vars), initial,
                        train=lambda learner: learner.learner.run().loss, calls=2, steps=2 * 3 * 2)
  finally:
    server_one.stop()
    server_two.stop()
