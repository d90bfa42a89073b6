"""PPO rollouts: step alignment, and the learner's dataset against a real Reverb queue."""

import numpy as np
import pytest
import reverb
import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from reverie.agents.ppo import agent as ppo_agent
from reverie.agents import replay
from reverie.agents.ppo import rollouts
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch.config import load_config
from reverie.launch.replay_server import make_tables

LANES, STEPS = 4, 8


def _setup(**sets):
  overrides = {"actor.envs_per_actor": LANES, "agent.rollout_steps": STEPS,
               "learner.batch_size": 16, "actor.count": 2, **sets}
  config = load_config("ppo_cartpole", [f"{k}={v}" for k, v in overrides.items()]).config
  env = make_batched_env("CartPole-v1", LANES, None)
  agent = ppo_agent.make_acting_agent(config.agent, env.observation_spec, env.action_spec)
  policy = ppo_agent.BatchedPolicy(agent, env.observation_spec, env.action_spec, collect=True)
  return config, env, agent, policy


def _rollout(env, policy, builder):
  while not builder.needs_bootstrap_step:
    to_env, sampled, info = policy.collect(builder.observation, builder.step_type)
    builder.add(sampled, info, env.step(to_env))
  _, sampled, info = policy.collect(builder.observation, builder.step_type)
  builder.add(sampled, info, None)
  return builder.take()


def test_rollout_steps_line_up_across_an_episode_end():
  _, env, _, policy = _setup()
  builder = rollouts.RolloutBuilder(60, env.reset(seed=0))  # CartPole under a random policy ends
  traj = _rollout(env, policy, builder)
  assert traj.observation.shape == (61, LANES, 4)
  lane = int(np.argmax((traj.next_step_type == ts.StepType.LAST).any(axis=0)))
  t = int(np.argmax(traj.next_step_type[:, lane] == ts.StepType.LAST))
  assert traj.discount[t, lane] == 0.0 and traj.reward[t, lane] == 1.0  # termination
  assert traj.step_type[t + 1, lane] == ts.StepType.LAST  # the boundary step PPO masks
  assert traj.next_step_type[t + 1, lane] == ts.StepType.FIRST
  assert traj.reward[t + 1, lane] == 0.0
  assert traj.step_type[t + 2, lane] == ts.StepType.FIRST
  assert traj.step_type[0].tolist() == [ts.StepType.FIRST] * LANES
  assert np.isfinite(traj.policy_info["value_prediction"]).all()


def test_learner_dataset_yields_only_the_current_version_and_counts_the_rest():
  config, env, agent, policy = _setup()
  server = reverb.Server(make_tables(config, env.observation_spec, env.action_spec))
  address = f"localhost:{server.port}"
  try:
    writer = reverb.Client(address).trajectory_writer(num_keep_alive_refs=1)
    builder = rollouts.RolloutBuilder(STEPS, env.reset(seed=1))
    written = []
    for version in (0, 0, 7):  # two stale rollouts, then one of the current version
      traj = _rollout(env, policy, builder)
      written.append((version, traj))
      replay.write_item(writer, {"trajectory": traj, "version": np.int64(version)},
                        [contract.PPO_TRAIN_TABLE])
      writer.flush()
    min_version = tf.Variable(7, dtype=tf.int64)
    dropped = tf.Variable(0, dtype=tf.int64)
    dataset = rollouts.make_dataset(address, contract.PPO_TRAIN_TABLE, agent, min_version,
                                    minibatch_size=16, dropped=dropped)
    minibatches = list(dataset.take(LANES * STEPS // 16))
    assert int(dropped.numpy()) == 2
    seen = np.sort(np.concatenate([m.observation.numpy().reshape(-1, 4) for m, _ in minibatches]),
                   axis=0)
    current = written[2][1].observation[:-1].reshape(-1, 4)  # no bootstrap step
    np.testing.assert_array_equal(seen, np.sort(current, axis=0))
    for minibatch, _ in minibatches:
      assert minibatch.observation.shape == (16, 1, 4)
      assert set(minibatch.policy_info) >= {"return", "advantage", "dist_params"}
    assert server.localhost_client().server_info()[contract.PPO_TRAIN_TABLE].current_size == 0

    # The launcher's stop marker ends a wait for data with STOP_MESSAGE.
    signature = server.localhost_client().server_info()[contract.PPO_TRAIN_TABLE].signature
    replay.write_item(writer, rollouts.stop_marker(signature), [contract.PPO_TRAIN_TABLE])
    writer.flush()
    with pytest.raises(tf.errors.InvalidArgumentError, match=rollouts.STOP_MESSAGE):
      next(iter(dataset))
    writer.close()
  finally:
    server.stop()
