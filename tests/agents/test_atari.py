"""Atari with real ALE environments: networks, frame-stacked replay, prioritized replay."""

import numpy as np
import pytest
import reverb
import tensorflow as tf

from reverie.agents.dqn import agent as dqn_agent
from reverie.agents.dqn import frames
from reverie.agents.dqn import dataset as dqn_dataset
from reverie.agents.dqn import transitions
from reverie.agents.dqn.config import DqnConfig
from reverie.agents.dqn.writer import ReplayWriter
from reverie.agents.ppo import agent as ppo_agent
from reverie.agents.ppo.config import PpoConfig
from reverie.envs.config import EnvConfig
from reverie.envs.registry import make_batched_env

PONG = "ALE/Pong-v5"


@pytest.fixture(scope="module")
def pong():
  env = make_batched_env(PONG, 2, env_config=EnvConfig(id=PONG), training=True)
  yield env
  env.close()


def test_pong_is_preprocessed(pong):
  assert pong.observation_spec.shape == (4, 84, 84)
  assert pong.observation_spec.dtype == np.uint8
  observation = pong.reset(seed=0)
  assert observation.shape == (2, 4, 84, 84) and observation.dtype == np.uint8
  # An episode's first stack repeats its first frame.
  np.testing.assert_array_equal(observation[:, 0], observation[:, 3])


def test_nature_q_network_shapes_and_tf_path(pong):
  config = DqnConfig(fc_layer_params=[512])
  network = dqn_agent.make_q_network(config, pong.observation_spec, pong.action_spec)
  network.create_variables()
  observation = pong.reset(seed=0)
  q_values, _ = network(observation)
  assert q_values.shape == (2, 6)
  kernels = [v.shape.as_list() for v in network.trainable_variables if "kernel" in v.name]
  assert kernels == [[8, 8, 4, 32], [4, 4, 32, 64], [3, 3, 64, 64], [3136, 512], [512, 6]]
  policy = dqn_agent.EpsilonGreedy(network, pong.observation_spec, pong.action_spec, seed=0)
  assert not policy.uses_numpy  # convolutions keep the TF path
  assert policy.act(observation, 0.0).shape == (2,)


def test_ppo_conv_networks_shapes_and_tf_path(pong):
  config = PpoConfig(actor_fc_layers=[512], value_fc_layers=[512], normalize_observations=False)
  agent = ppo_agent.make_acting_agent(config, pong.observation_spec, pong.action_spec)
  policy = ppo_agent.BatchedPolicy(agent, pong.observation_spec, pong.action_spec, collect=True)
  assert not policy.uses_numpy
  observation = pong.reset(seed=0)
  action, _, info = policy.collect(observation, np.zeros(2, np.int32))
  assert action.shape == (2,) and info["dist_params"]["logits"].shape == (2, 6)
  assert info["value_prediction"].shape == (2,)
  # [B, T, ...] inputs, as the learner gives them.
  values, _ = agent._value_net(tf.constant(observation[:, None]))  # pylint: disable=protected-access
  assert values.shape == (2, 1)


def test_frame_items_rebuild_the_stacked_transitions(pong):
  """Frames written once per step and stacked by the learner equal the env's own stacks."""
  steps_per_item, n_step, lanes = 4, 3, 2
  env = make_batched_env(PONG, lanes, max_episode_steps=23,  # short episodes: many resets
                         env_config=EnvConfig(id=PONG, noop_max=3), training=True)
  signature = frames.item_signature(env.observation_spec, env.action_spec, lanes,
                                    steps_per_item, n_step)
  server = reverb.Server([reverb.Table.queue("q", 1000, signature=signature)])
  address = f"localhost:{server.port}"
  observation = env.reset(seed=1)
  writer = ReplayWriter(reverb.Client(address), "q", env.observation_spec, env.action_spec,
                        observation, steps_per_item, n_step, 0.9)
  reference = transitions.NStepAccumulator(lanes, n_step, 0.9, observation)
  rows, expected = 0, []
  rng = np.random.default_rng(0)
  for _ in range(120):
    action = rng.integers(0, 6, lanes)
    step = env.step(action)
    writer.add(action, step)
    rows += 1
    expected.append(reference.add(action, step))
    if writer.item_ready():
      writer.create_item()
  writer.writer.flush()
  items = server.localhost_client().server_info()["q"].current_size
  dataset = reverb.TrajectoryDataset.from_table_signature(address, "q", 1)
  got = [frames.stack_item(sample.data, n_step) for sample in dataset.take(items)]
  writer.writer.close()
  server.stop()
  env.close()
  # Item i ends at row (first item's last row) + i * K; its transitions are lane-major.
  first_end = frames.frame_rows(steps_per_item, n_step, 4) - 1
  checked = 0
  for i, item in enumerate(got):
    end = first_end + i * steps_per_item
    for column in transitions.COLUMNS:
      want = np.stack([expected[row - 1][column] for row in range(end - steps_per_item + 1,
                                                                  end + 1)], axis=1)
      want = want.reshape(lanes * steps_per_item, *want.shape[2:])
      have = item[column].numpy()
      valid = item["valid"].numpy()
      np.testing.assert_array_equal(have[valid], want[valid], err_msg=column)
      checked += valid.sum()
  assert items >= 25 and checked > 1000


def test_importance_weights_scale_the_loss(pong):
  probability = tf.constant([0.1, 0.2, 0.4], tf.float64)
  weights = dqn_dataset.importance_weights(probability, tf.constant([10, 10, 10], tf.int64), 0.5)
  np.testing.assert_allclose(weights.numpy(), (10 * probability.numpy()) ** -0.5
                             / (10 * 0.1) ** -0.5, rtol=1e-6)
  # The agent's loss is the importance-weighted mean of its per-transition losses.
  from tf_agents.specs import tensor_spec
  from tf_agents.trajectories import time_step as ts
  time_step_spec = tensor_spec.from_spec(ts.time_step_spec(pong.observation_spec))
  agent, _ = dqn_agent.make_agent(DqnConfig(fc_layer_params=[16], double_dqn=False),
                                  time_step_spec, tensor_spec.from_spec(pong.action_spec),
                                  tf.Variable(0, dtype=tf.int64))
  rng = np.random.default_rng(0)
  batch = 6
  observation = rng.integers(0, 255, (batch, 4, 84, 84), np.uint8)
  item = {"observation": observation, "next_observation": observation[::-1].copy(),
          "action": rng.integers(0, 6, batch), "reward": rng.normal(size=batch).astype(np.float32),
          "discount": np.full(batch, 0.99, np.float32), "valid": np.ones(batch, bool)}
  experience = transitions.to_transition(tf.nest.map_structure(tf.constant, item))
  plain = agent._loss(experience)  # pylint: disable=protected-access
  weights = tf.constant(rng.uniform(0.1, 1.0, batch), tf.float32)
  weighted = agent._loss(experience, weights=weights)  # pylint: disable=protected-access
  per_transition = tf.reshape(plain.extra.td_loss, [-1])
  np.testing.assert_allclose(float(weighted.loss),
                             float(tf.reduce_mean(weights * per_transition)), rtol=1e-5)
  assert abs(float(weighted.loss) - float(plain.loss)) > 1e-6


def test_prioritized_replay_writes_td_priorities_back(tmp_path):
  """A real actor on Pong, the real learner: item priorities leave 1.0 after train steps."""
  import threading
  from tf_agents.specs import tensor_spec
  from tf_agents.trajectories import time_step as ts
  from reverie.launch import contract
  from reverie.launch import replay_bytes
  from reverie.launch import strategy as strategy_lib
  from reverie.launch.actor import run_actor
  from reverie.launch.config import load_config
  from reverie.launch.learner import DqnLearner
  from reverie.launch.replay_server import start_replay_server
  from reverie.launch.run_state import RunState
  sets = {"actor.envs_per_actor": 4, "replay.min_size": 200, "learner.batch_size": 32,
          "learner.steps_per_call": 5, "replay.samples_per_insert": 4,
          "replay.sampler": "prioritized", "agent.fc_layer_params": "[32]",
          "agent.conv_layer_params": "[[8,8,4],[8,4,2]]"}
  config = load_config("dqn_atari", [f"{k}={v}" for k, v in sets.items()]).config
  env = make_batched_env(config.env.id, 1, env_config=config.env)
  observation_spec, action_spec = env.observation_spec, env.action_spec
  env.close()
  run_dir = contract.RunDir(tmp_path)
  server = start_replay_server(config, run_dir, None, observation_spec, action_spec)
  address = f"localhost:{server.port}"
  state = RunState(max_env_steps=1_500)
  try:
    learner = DqnLearner(config, run_dir, address, strategy_lib.make_strategy(config.strategy),
                         tensor_spec.from_spec(ts.time_step_spec(observation_spec)),
                         tensor_spec.from_spec(action_spec))
    actor = threading.Thread(target=run_actor, args=(config, 0, address, run_dir, state),
                             daemon=True)
    actor.start()
    losses = [learner.train(5) for _ in range(6)]
    assert any(loss is not None for loss in losses)
    state.request_stop("test done")
    actor.join(30)
    checkpoint = server.localhost_client().checkpoint()
    priorities = replay_bytes.item_priorities(checkpoint, contract.EXPERIENCE_TABLE)
    assert priorities and min(priorities) > 0
    changed = [p for p in priorities if p != 1.0]  # actors insert at 1.0
    assert len(changed) >= 5, priorities
  finally:
    state.request_stop("test done")
    server.stop()
