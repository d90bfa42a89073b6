"""Roles against a real in-process Reverb server: actor writes, learner trains, weights flow."""

import contextlib
import threading

import numpy as np
import pytest
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container as rvc
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from reverie.agents.dqn import agent as dqn_agent
from reverie.agents.dqn import transitions
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch import strategy as strategy_lib
from reverie.launch.actor import run_actor
from reverie.launch.config import load_config
from reverie.launch.learner import DqnLearner, run_learner
from reverie.launch.errors import ReverieError
from reverie.launch.replay_server import make_tables, start_replay_server
from reverie.launch.run_state import RunState
from conftest import scalars


def _config(**sets):
  overrides = {"actor.envs_per_actor": 8, "replay.min_size": 200, "learner.batch_size": 32,
               "learner.steps_per_call": 5, "replay.samples_per_insert": 4, **sets}
  return load_config("dqn_cartpole", [f"{k}={v}" for k, v in overrides.items()]).config


def _specs(config):
  env = make_batched_env(config.env.id, 1)
  specs = env.observation_spec, env.action_spec
  env.close()
  return specs


@contextlib.contextmanager
def _learner_and_actor(tmp_path, config, max_env_steps: int):
  """A replay server, a DqnLearner on it and an actor thread writing into it: (learner,
  address, state, actor); the server stops afterwards."""
  run_dir = contract.RunDir(tmp_path)
  observation_spec, action_spec = _specs(config)
  time_step_spec = tensor_spec.from_spec(ts.time_step_spec(observation_spec))
  server = start_replay_server(config, run_dir, None, observation_spec, action_spec)
  address = f"localhost:{server.port}"
  try:
    learner = DqnLearner(config, run_dir, address, strategy_lib.make_strategy(config.strategy),
                         time_step_spec, tensor_spec.from_spec(action_spec))
    state = RunState(max_env_steps=max_env_steps)
    actor = threading.Thread(target=run_actor, args=(config, 0, address, run_dir, state),
                             daemon=True)
    actor.start()
    yield learner, address, state, actor
  finally:
    server.stop()


def test_actor_writes_learner_trains_and_weights_reach_actors(tmp_path):
  config = _config()
  observation_spec, action_spec = _specs(config)
  with _learner_and_actor(tmp_path, config, 2_000) as (learner, address, state, actor):
    losses = [learner.train(5) for _ in range(4)]
    losses = [float(l) for l in losses if l is not None]
    assert losses and all(np.isfinite(losses)), losses
    assert int(learner.train_step.numpy()) >= 5

    info = reverb.Client(address).server_info()[contract.EXPERIENCE_TABLE]
    assert info.current_size > 0
    sample = next(iter(reverb.Client(address).sample(
        contract.EXPERIENCE_TABLE, emit_timesteps=False, unpack_as_table_signature=True)))
    # Raw rows (agents/dqn/transitions.py), summed here into K steps (replay.steps_per_item)
    # of 8 lanes of 4 features, each observation beside its bootstrap one; some lanes carry
    # a transition.
    columns = transitions.unpack(sample.data, action_spec, config.agent.n_step_update,
                                 config.agent.gamma)
    assert columns["observation"].shape == (config.replay.steps_per_item, 8, 4)
    assert columns["next_observation"].shape == (config.replay.steps_per_item, 8, 4)
    assert np.asarray(columns["valid"]).any()

    # Weights: the learner pushes, a fresh network pulls the same values.
    learner.push_weights()
    network = dqn_agent.make_q_network(config.agent, observation_spec, action_spec)
    network.create_variables()
    step = tf.Variable(0, dtype=tf.int64)
    rvc.ReverbVariableContainer(address, [contract.VARIABLES_TABLE]).update(
        {contract.POLICY_KEY: network.variables, contract.TRAIN_STEP_KEY: step})
    assert int(step.numpy()) == int(learner.train_step.numpy())
    for pulled, trained in zip(network.variables, learner.network.variables):
      np.testing.assert_array_equal(pulled.numpy(), trained.numpy())

    state.request_stop("test over")  # the server still runs: the actor must stop by itself
    actor.join(timeout=30)
    assert not actor.is_alive()
    assert state.env_steps > 0


def test_throttled_pushes_and_summaries_still_end_with_the_newest(tmp_path):
  """run_learner pushes and writes scalars at most every few ms, but always the last ones."""
  config = _config()
  with _learner_and_actor(tmp_path, config, 100_000) as (learner, address, state, actor):
    learner.min_push_seconds = 3600.0  # no push but the first (at construction) and the last
    learner.min_summary_seconds = 3600.0  # no scalars but the last call's
    calls = []
    run_learner(learner, state, should_stop=lambda: calls.append(1) or len(calls) > 4)
    state.request_stop("test over")
    actor.join(timeout=30)
    step = int(learner.train_step.numpy())
    assert step >= 2 * config.learner.steps_per_call, step
    pushes = reverb.Client(address).server_info()[contract.VARIABLES_TABLE]
    assert pushes.rate_limiter_info.insert_stats.completed == 2
    pulled = rvc.ReverbVariableContainer(address, [contract.VARIABLES_TABLE]).pull()
    assert int(pulled[contract.TRAIN_STEP_KEY]) == step
    written = scalars(tmp_path, "learner")
    assert [s for s, _ in written["learner/loss"]] == [step]
    assert written["learner/steps_per_second"][0][1] > 0


def test_steps_per_second_after_a_restore_counts_only_steps_trained_since(tmp_path):
  with _learner_and_actor(tmp_path, _config(), 100_000) as (learner, _, state, actor):
    while learner.train(5) is None or int(learner.train_step.numpy()) < 10:
      pass
    learner.save_checkpoint()
    learner.train_step.assign(0)
    step = learner.restore()["train_step"]
    assert step >= 10 and int(learner.train_step.numpy()) == step
    learner.write_summaries({"learner/loss": 0.0}, force=True)  # no step since the restore
    state.request_stop("test over")
    actor.join(timeout=30)
    assert scalars(tmp_path, "learner")["learner/steps_per_second"] == [(step, 0.0)]


def test_learner_gives_up_waiting_when_reverb_has_no_data(tmp_path):
  config = _config(**{"replay.rate_limiter_timeout_seconds": 0.5})
  run_dir = contract.RunDir(tmp_path)
  observation_spec, action_spec = _specs(config)
  time_step_spec = tensor_spec.from_spec(ts.time_step_spec(observation_spec))
  server = start_replay_server(config, run_dir, None, observation_spec, action_spec)
  try:
    learner = DqnLearner(config, run_dir, f"localhost:{server.port}",
                         strategy_lib.make_strategy(config.strategy), time_step_spec,
                         tensor_spec.from_spec(action_spec))
    before = int(learner.train_step.numpy())
    assert learner.train(3) is None  # no actor: the rate limiter times out instead of hanging
    assert int(learner.train_step.numpy()) == before
  finally:
    server.stop()


def test_one_device_strategy_places_the_learner():
  config = _config(**{"strategy.kind": "one_device"})
  strategy = strategy_lib.make_strategy(config.strategy)
  assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
  assert strategy.num_replicas_in_sync == 1


def test_ppo_has_a_normalization_queue_only_with_normalizers():
  # Without normalizers the learner reads no second queue (8 % of its train steps at batch
  # 256, benchmarks/learner_throughput.py) and actors write no second item per rollout.
  from reverie.launch.replay_server import make_tables  # pylint: disable=g-import-not-at-top
  for sets, expected in (
      ([], {contract.PPO_TRAIN_TABLE}),
      (["agent.normalize_rewards=true"], {contract.PPO_TRAIN_TABLE, contract.PPO_NORMALIZATION_TABLE}),
      (["agent.normalize_observations=true", "strategy.kind=multi_worker", "strategy.workers=2"],
       {"ppo_train_0", "ppo_train_1", "ppo_normalization_0", "ppo_normalization_1"})):
    config = load_config("ppo_cartpole", sets).config
    observation_spec, action_spec = _specs(config)
    names = {table.name for table in make_tables(config, observation_spec, action_spec)}
    assert names - {contract.VARIABLES_TABLE} == expected, sets


def test_a_replay_checkpoint_of_another_item_layout_is_refused_with_its_folder(tmp_path):
  """A run written before items were packed (six columns) resumes with one clear line."""
  config = _config()
  run_dir = contract.RunDir(tmp_path)
  observation_spec, action_spec = _specs(config)
  rows = [config.replay.steps_per_item, config.actor.envs_per_actor]
  spec = lambda shape, dtype: tf.TensorSpec([*rows, *shape], dtype)
  old_layout = {"observation": spec([4], tf.float32), "action": spec([], tf.int64),
                "reward": spec([], tf.float32), "discount": spec([], tf.float32),
                "next_observation": spec([4], tf.float32), "valid": spec([], tf.bool)}
  tables = [reverb.Table.queue(t.name, 10, signature=old_layout)
            if t.name == contract.EXPERIENCE_TABLE else t
            for t in make_tables(config, observation_spec, action_spec)]
  old = reverb.Server(tables, checkpointer=reverb.checkpointers.DefaultCheckpointer(
      path=str(run_dir.replay)))
  old.localhost_client().checkpoint()
  old.stop()
  with pytest.raises(ReverieError, match=f"{run_dir.replay}.*another layout.*move that folder"):
    start_replay_server(config, run_dir, None, observation_spec, action_spec)
  # The checkpoint is left where it was; this run's own layout loads.
  assert any(run_dir.replay.iterdir())
  server = start_replay_server(config, contract.RunDir(tmp_path / "fresh"), None,
                               observation_spec, action_spec)
  server.stop()
