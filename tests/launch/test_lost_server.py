"""An actor outlives its replay server: it waits, says so, and writes to the next one."""

import logging
import threading
import time

import portpicker
import pytest

from reverie.agents import replay
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch.actor import run_actor
from reverie.launch.config import load_config
from reverie.launch.replay_server import start_replay_server
from reverie.launch.run_state import RunState


def _experience_items(server) -> int:
  return server.localhost_client().server_info()[contract.EXPERIENCE_TABLE].current_size


def _wait_for(condition, seconds: float, what: str) -> None:
  deadline = time.monotonic() + seconds
  while not condition():
    if time.monotonic() > deadline:
      pytest.fail(f"{what} within {seconds:.0f} s")
    time.sleep(0.1)


def test_actor_recovers_when_a_new_server_takes_the_port(tmp_path, caplog):
  config = load_config("dqn_cartpole", ["actor.envs_per_actor=4", "replay.min_size=100000",
                                        "replay.max_size=100000"]).config
  env = make_batched_env("CartPole-v1", 1)
  specs = env.observation_spec, env.action_spec
  env.close()
  port = portpicker.pick_unused_port()
  run_dir = contract.RunDir(tmp_path / "run")
  state = RunState(max_env_steps=10_000_000)

  def start_server(directory):
    server = start_replay_server(config, contract.RunDir(directory), port, *specs)
    # What the learner does at start: the actors' first weights.
    from reverie.agents.dqn import agent as dqn_agent  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    network = dqn_agent.make_q_network(config.agent, *specs)
    network.create_variables()
    replay.variable_container(f"localhost:{port}", contract.VARIABLES_TABLE).push(
        {contract.POLICY_KEY: network.variables,
         contract.TRAIN_STEP_KEY: tf.Variable(0, dtype=tf.int64)})
    return server

  first = start_server(tmp_path / "first")
  caplog.set_level(logging.INFO, logger="reverie.actor")
  actor = threading.Thread(target=run_actor,
                           args=(config, 0, f"localhost:{port}", run_dir, state), daemon=True)
  actor.start()
  second = None
  try:
    _wait_for(lambda: _experience_items(first) > 0, 60, "no items reached the first server")
    first.stop()
    time.sleep(7)  # longer than the actor's 5 s before it asks whether the server is there
    assert actor.is_alive(), "the actor died with its server"
    second = start_server(tmp_path / "second")
    _wait_for(lambda: _experience_items(second) > 0, 60, "no items reached the new server")
    assert actor.is_alive()
  finally:
    state.request_stop("test over")
    actor.join(timeout=30)
    if second is not None:
      second.stop()
  messages = [r.getMessage() for r in caplog.records]
  assert any("replay server unreachable" in m for m in messages), messages
  assert any("replay server back after" in m for m in messages), messages
