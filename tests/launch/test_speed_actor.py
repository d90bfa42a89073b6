"""Issue 9's actor speed-ups keep what the actor does: items, weights and the policy's actions."""

import time

import numpy as np
import pytest
import reverb
import tensorflow as tf

from reverie.agents import replay
from reverie.agents.dqn import agent as dqn_agent
from reverie.agents.dqn import transitions
from reverie.agents.dqn.config import DqnConfig
from reverie.agents.dqn.writer import ReplayWriter
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch.actor import BackgroundPuller, WeightPuller


def _network(env):
  network = dqn_agent.make_q_network(DqnConfig(fc_layer_params=[16, 8]), env.observation_spec,
                                     env.action_spec)
  network.create_variables()
  return network


def _variables(network):
  return {contract.POLICY_KEY: network.variables,
          contract.TRAIN_STEP_KEY: tf.Variable(0, dtype=tf.int64)}


class _Pushes:
  """A learner's network pushed once to a variables table, and an actor's puller and policy."""

  def __init__(self, interval_steps: int):
    self.env = make_batched_env("CartPole-v1", 4)
    self.learner_net, actor_net = _network(self.env), _network(self.env)
    self.learner_vars, actor_vars = _variables(self.learner_net), _variables(actor_net)
    self.server = reverb.Server([replay.variables_table(contract.VARIABLES_TABLE,
                                                        self.learner_vars)])
    address = f"localhost:{self.server.port}"
    self.container = replay.variable_container(address, contract.VARIABLES_TABLE)
    self.container.push(self.learner_vars)
    self.puller = WeightPuller(reverb.Client(address), contract.VARIABLES_TABLE, actor_vars,
                               interval_steps=interval_steps, min_seconds=0.0)
    self.policy = dqn_agent.EpsilonGreedy(actor_net, self.env.observation_spec,
                                          self.env.action_spec, seed=0)
    self.observation = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)

  def push_new_weights(self, train_step: int) -> None:
    for variable in self.learner_net.variables:
      variable.assign(variable * -2.0 + 0.1)
    self.learner_vars[contract.TRAIN_STEP_KEY].assign(train_step)
    self.container.push(self.learner_vars)

  def assert_policy_has_the_learners_weights(self) -> None:
    np.testing.assert_allclose(self.policy.q_values(self.observation),
                               self.learner_net(self.observation)[0].numpy(),
                               rtol=1e-5, atol=1e-5)

  def close(self) -> None:
    self.server.stop()
    self.env.close()


def test_weights_are_pulled_only_after_a_push_and_equal_what_was_pushed():
  pushes = _Pushes(interval_steps=100)
  puller = pushes.puller
  try:
    pushes.policy.refresh(puller.pull())
    pushes.assert_policy_has_the_learners_weights()
    assert puller.pulls == 1
    assert not puller.due(99)  # inside the interval: no look at all
    assert puller.due(1) and puller.look() is None and puller.pulls == 1  # nothing new
    pushes.push_new_weights(train_step=7)
    assert not puller.due(50)  # half an interval after the push
    assert puller.due(50)
    fresh = puller.look()
    assert fresh is not None and puller.pulls == 2
    pushes.policy.refresh(fresh)
    pushes.assert_policy_has_the_learners_weights()
    assert puller.due(100) and puller.look() is None and puller.pulls == 2
  finally:
    pushes.close()


def test_the_minimum_time_between_looks_holds_pulls_back():
  env = make_batched_env("CartPole-v1", 1)
  network = _network(env)
  variables = _variables(network)
  server = reverb.Server([replay.variables_table(contract.VARIABLES_TABLE, variables)])
  container = replay.variable_container(f"localhost:{server.port}", contract.VARIABLES_TABLE)
  container.push(variables)
  puller = WeightPuller(reverb.Client(f"localhost:{server.port}"), contract.VARIABLES_TABLE,
                        variables, interval_steps=1, min_seconds=3600.0)
  try:
    assert puller.pull() is not None
    container.push(variables)
    assert not any(puller.due(1) for _ in range(10)) and puller.pulls == 1
  finally:
    server.stop()
    env.close()


def test_background_pulls_hand_over_each_new_push_once():
  pushes = _Pushes(interval_steps=10)

  def fresh_within(seconds, steps):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
      fresh = background.after_steps(steps)
      if fresh is not None:
        return fresh
      time.sleep(0.01)
    return None

  pushes.policy.refresh(pushes.puller.pull())
  background = BackgroundPuller(pushes.puller)
  try:
    assert fresh_within(0.5, 10) is None and background.pulls == 1  # looks, but nothing new
    assert fresh_within(0.5, 0) is None  # no steps, no look
    pushes.push_new_weights(train_step=7)
    assert fresh_within(0.5, 0) is None  # pushed, but the interval has not passed
    fresh = fresh_within(10.0, 10)
    assert fresh is not None and background.pulls == 2
    pushes.policy.refresh(fresh)
    pushes.assert_policy_has_the_learners_weights()
    assert fresh_within(0.5, 10) is None and background.pulls == 2  # handed over once
  finally:
    background.close()
    pushes.close()
  assert not background._thread.is_alive()  # pylint: disable=protected-access


def test_pulled_weights_on_the_tf_path_are_assigned_to_the_network():
  env = make_batched_env("CartPole-v1", 1)
  source, target = _network(env), _network(env)
  policy = dqn_agent.EpsilonGreedy(target, env.observation_spec, env.action_spec, seed=0,
                                   allow_numpy=False)
  policy.refresh({v.ref(): s.numpy() for v, s in zip(target.variables, source.variables)})
  observation = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
  np.testing.assert_allclose(policy.q_values(observation), source(observation)[0].numpy(),
                             rtol=1e-5, atol=1e-5)
  env.close()


def test_items_written_as_one_step_are_the_rows_of_the_n_step_accumulator():
  # NStepBlocks.take hands over views of buffers that later steps overwrite, and nothing
  # is flushed before the end: each item must still hold its own rows (Reverb copies on
  # append); the learner's sums of them must be NStepAccumulator's rows.
  lanes, n_step, k_rows = 3, 3, 4
  env = make_batched_env("CartPole-v1", lanes, max_episode_steps=9)  # many resets
  signature = transitions.item_signature(env.observation_spec, env.action_spec, lanes, k_rows,
                                         n_step)
  server = reverb.Server([reverb.Table.queue("q", 1000, signature=signature)])
  observation = env.reset(seed=2)
  writer = ReplayWriter(reverb.Client(f"localhost:{server.port}"), "q", env.observation_spec,
                        env.action_spec, observation, k_rows, n_step, 0.9)
  reference = transitions.NStepAccumulator(lanes, n_step, 0.9, observation)
  rng, expected = np.random.default_rng(0), []
  for _ in range(10 * k_rows + 2):
    action = rng.integers(0, 2, lanes)
    step = env.step(action)
    writer.add(action, step)
    expected.append(reference.add(action, step))
    if writer.item_ready():
      writer.create_item()
  writer.writer.flush()
  dataset = reverb.TrajectoryDataset.from_table_signature(f"localhost:{server.port}", "q", 1)
  got = [sample.data for sample in dataset.take(10)]
  writer.writer.close()
  server.stop()
  env.close()
  for i, item in enumerate(got):
    rows = expected[i * k_rows:(i + 1) * k_rows]
    columns = transitions.unpack(item, env.action_spec, n_step, 0.9)
    for column in transitions.COLUMNS:
      want = np.stack([row[column] for row in rows])
      np.testing.assert_array_equal(columns[column].numpy(), want, err_msg=f"item {i} {column}")


def test_a_step_written_as_a_whole_item_lands_in_each_table_and_a_misfit_names_its_columns():
  signature = {"b": tf.TensorSpec([], tf.int64), "a": tf.TensorSpec([2], tf.float32)}
  server = reverb.Server([reverb.Table.queue(name, 10, signature=signature)
                          for name in ("q1", "q2")])
  client = reverb.Client(f"localhost:{server.port}")
  writer = client.trajectory_writer(num_keep_alive_refs=1)
  try:
    for value in (1, 2):
      replay.write_item(writer, {"b": np.int64(value), "a": np.full(2, value, np.float32)},
                        ["q1", "q2"])
    writer.flush()
    for table in ("q1", "q2"):
      got = [next(client.sample(table, emit_timesteps=False)).data for _ in range(2)]
      assert [int(b) for _, b in got] == [1, 2]  # columns in signature order: a, b
      assert [a.tolist() for a, _ in got] == [[1.0, 1.0], [2.0, 2.0]]
    with pytest.raises(ValueError, match=r"columns in order: a, b"):
      replay.write_item(writer, {"b": np.int64(3), "a": np.zeros(2, np.float64)}, ["q1"])
  finally:
    writer.close()
    server.stop()

