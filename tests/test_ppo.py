"""PPO through the real CLI: several actors, continuous actions, exports, bad input."""

import json

import numpy as np
import tensorflow as tf
import tensorflow_probability  # noqa: F401  (the PPO SavedModel holds tfp distributions)
from tf_agents.trajectories import time_step as ts

from conftest import REPO, run_cli, scalars

SHORT_PPO = ["--set", "run.stop_at_return=null", "--set", "eval.episodes=4",
             "--set", "agent.num_epochs=2"]


def test_several_actors_and_one_learner_do_not_deadlock(tmp_path):
  run_dir = tmp_path / "run"
  # 3 actors x 4 lanes x 16 steps = 192 env steps per version, 3 minibatches of 64.
  result = run_cli("train", "ppo_cartpole", "--run-dir", run_dir, *SHORT_PPO,
                   "--set", "actor.count=3", "--set", "actor.envs_per_actor=4",
                   "--set", "agent.rollout_steps=16", "--set", "learner.batch_size=64",
                   "--set", "run.max_env_steps=2500", "--set", "eval.interval_steps=1000",
                   cwd=REPO, timeout=240)  # a deadlock fails here
  assert result.returncode == 0, result.stdout + result.stderr
  status = json.loads((run_dir / "status.json").read_text())
  assert status["reason"] == "reached run.max_env_steps"
  versions = status["train_step"] // (3 * 2)  # 3 minibatches x 2 epochs per version
  assert status["train_step"] % 6 == 0 and versions * 192 >= 2000
  learner = scalars(run_dir, "learner")
  for tag in ("learner/loss", "learner/policy_loss", "learner/value_loss", "learner/entropy",
              "learner/approx_kl", "learner/clip_fraction", "replay/dropped_stale",
              "learner/steps_per_second", "learner/num_replicas"):
    assert learner[tag] and all(np.isfinite(v) for _, v in learner[tag]), tag
  # entropy and approx_kl come from after each version's last update: the policy has moved
  assert all(v >= 0 for _, v in learner["learner/approx_kl"])
  assert any(v > 0 for _, v in learner["learner/approx_kl"])
  assert 0 < learner["learner/entropy"][0][1] <= np.log(2) + 1e-6
  for i in range(3):
    assert scalars(run_dir, f"actor_{i}")["actor/env_steps_per_second"], i


def test_pendulum_trains_and_exports_in_bound_actions(tmp_path):
  run_dir = tmp_path / "run"
  result = run_cli("train", "ppo_pendulum", "--run-dir", run_dir, *SHORT_PPO,
                   "--set", "run.max_env_steps=2048", "--set", "eval.interval_steps=1024",
                   "--set", "agent.rollout_steps=64", cwd=REPO, timeout=240)
  assert result.returncode == 0, result.stdout + result.stderr
  observations = np.random.default_rng(0).uniform(-8, 8, size=(64, 3)).astype(np.float32)
  policy = tf.saved_model.load(str(run_dir / "policies" / "greedy"))
  step = ts.TimeStep(step_type=tf.ones([64], tf.int32), reward=tf.zeros([64]),
                     discount=tf.ones([64]), observation=tf.constant(observations))
  actions = policy.action(step).action.numpy()
  assert actions.shape == (64, 1) and np.all(np.abs(actions) <= 2.0)
  interpreter = tf.lite.Interpreter(model_path=str(run_dir / "policies" / "greedy.tflite"))
  interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [64, 3])
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], observations)
  interpreter.invoke()
  lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  np.testing.assert_allclose(lite, actions, atol=1e-5)
  evaluation = run_cli("eval", run_dir, "--episodes", "3", cwd=REPO)
  assert evaluation.returncode == 0, evaluation.stderr
  assert "Pendulum-v1: avg return" in evaluation.stdout


def test_dqn_keys_are_rejected_in_a_ppo_config(tmp_path):
  result = run_cli("train", "ppo_cartpole", "--run-dir", tmp_path / "run",
                   "--set", "agent.target_update_period=100", cwd=REPO)
  assert result.returncode == 2
  assert "agent.target_update_period" in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "run").exists()


def test_a_minibatch_that_does_not_divide_a_version_is_rejected(tmp_path):
  result = run_cli("train", "ppo_cartpole", "--run-dir", tmp_path / "run",
                   "--set", "learner.batch_size=100", cwd=REPO)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      "reverie: error: learner.batch_size: 100 does not divide the 512 env steps of one policy "
      "version (actor.count x actor.envs_per_actor x agent.rollout_steps); PPO's minibatches "
      "must cover each version's data exactly"]
