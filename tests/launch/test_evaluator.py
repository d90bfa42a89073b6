"""The evaluator role against a real Reverb server: what it scores, and when."""

import contextlib
import threading
import time

import numpy as np
import pytest
import reverb
import tensorflow as tf

from reverie.agents import replay
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch.config import load_config
from reverie.launch.evaluator import _greedy_policy, run_evaluator
from reverie.launch.run_state import RunState


@contextlib.contextmanager
def _learner(config, train_step: int):
  """(the server's address, the learner's pushed variables, its train step, its push) on a
  variables table that holds their first push; the variables have the evaluator's layout."""
  env = make_batched_env("CartPole-v1", 1)
  pushed, _, _ = _greedy_policy(config, env)
  step = tf.Variable(train_step, dtype=tf.int64)
  variables = {contract.POLICY_KEY: pushed, contract.TRAIN_STEP_KEY: step}
  server = reverb.Server([replay.variables_table(contract.VARIABLES_TABLE, variables)])
  push = replay.weight_pusher(f"localhost:{server.port}", contract.VARIABLES_TABLE, variables)
  try:
    push()
    yield f"localhost:{server.port}", pushed, step, push
  finally:
    server.stop()
    env.close()


def _wait_for(condition, what: str, timeout_seconds: float = 30.0) -> None:
  deadline = time.monotonic() + timeout_seconds
  while not condition():
    assert time.monotonic() < deadline, f"timed out waiting for {what}"
    time.sleep(0.01)


@pytest.mark.parametrize("config_name", ["dqn_cartpole", "ppo_cartpole"])
def test_the_evaluator_scores_and_hands_on_the_weights_it_pulled(tmp_path, config_name):
  """The evaluator pulls numpy weights (no TF assign on its numpy path): the weights it
  confirms, for the learner's export, are the learner's push, not its own initial ones."""
  config = load_config(config_name, ["run.stop_at_return=1", "eval.episodes=2",
                                     "eval.interval_steps=10"]).config
  state = RunState(max_env_steps=1_000)
  state.env_steps = 10
  with _learner(config, train_step=123) as (address, pushed, _, push):
    for variable in pushed:  # the learner's: same layout, other values
      variable.assign(tf.random.stateless_normal(variable.shape, [3, 4]))
    push()
    run_evaluator(config, address, contract.RunDir(tmp_path), state)
  assert state.stop_reason == "reached stop_at_return 1"
  assert state.evals[0]["train_step"] == 123
  assert len(state.solved_weights) == len(pushed)
  for got, want in zip(state.solved_weights, pushed):
    np.testing.assert_array_equal(got, want.numpy())


def test_the_evaluator_scores_each_push_once_and_waits_for_the_next(tmp_path):
  """Weights it has scored are not scored again (same greedy policy, same episodes, same
  score): a due evaluation waits for the learner's next push, and the end of collection
  without a new push stops the run on the last score."""
  config = load_config("dqn_cartpole", ["eval.episodes=2", "eval.interval_steps=10",
                                        "run.stop_at_return=null"]).config
  state = RunState(max_env_steps=1_000)
  state.env_steps = 10
  with _learner(config, train_step=7) as (address, _, train_step, push):
    evaluator = threading.Thread(
        target=run_evaluator, args=(config, address, contract.RunDir(tmp_path), state))
    evaluator.start()
    try:
      _wait_for(lambda: len(state.evals) == 1, "the first evaluation")
      state.env_steps = 25  # past the next evaluation (20), no new push
      time.sleep(1.0)
      assert [e["train_step"] for e in state.evals] == [7]
      train_step.assign(9)
      push()
      _wait_for(lambda: len(state.evals) == 2, "the evaluation of the new push")
      assert state.evals[1]["train_step"] == 9
      assert state.evals[1]["env_steps"] == 25
      state.env_steps = 1_000
      state.collection_done.set()  # and no new push: the last score stands
      evaluator.join(timeout=30)
      assert not evaluator.is_alive()
    finally:
      state.request_stop("test done")
      evaluator.join(timeout=30)
  assert state.stop_reason == "reached run.max_env_steps"
  assert [e["train_step"] for e in state.evals] == [7, 9]
