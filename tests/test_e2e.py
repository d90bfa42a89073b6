"""End to end through the real CLI: train, read TensorBoard back, evaluate, load exports."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import CUSTOM_ENV, REPO, SHORT_RUN, run_cli, scalars


def test_train_writes_the_run_directory(trained_run):
  run_dir, result = trained_run
  assert result.stdout.splitlines()[0] == str(run_dir)
  status = json.loads((run_dir / "status.json").read_text())
  assert status["status"] == "finished" and status["reason"] == "reached run.max_env_steps"
  assert status["env_steps"] >= 3000 and status["train_step"] > 0
  assert status["last_eval"]["episodes"] == 4
  for path in ["config.yaml", "checkpoints/checkpoint", "policies/greedy/saved_model.pb",
               "policies/collect/saved_model.pb", "policies/greedy.tflite",
               "logs/learner_0.log", "logs/actor_0.log", "logs/evaluator_0.log",
               "logs/replay_server_0.log", "pids/learner_0", "pids/actor_0"]:
    assert (run_dir / path).exists(), path
  assert (run_dir / "policies" / "steps" / str(status["train_step"]) / "saved_model.pb").exists()
  assert not (run_dir / "train").exists(), "TF-Agents' default layout must not leak in"
  assert "replay server on port" in result.stdout
  assert "TensorFlow intra-op threads: 1 " in (run_dir / "logs/learner_0.log").read_text()


def test_tensorboard_has_every_role(trained_run):
  run_dir, _ = trained_run
  learner = scalars(run_dir, "learner")
  assert all(np.isfinite(v) for _, v in learner["learner/loss"])
  assert learner["learner/steps_per_second"][-1][1] > 0
  assert learner["learner/num_replicas"][-1][1] == 1
  actor = scalars(run_dir, "actor_0")
  assert actor["actor/env_steps_per_second"][-1][1] > 0
  assert actor["actor/episode_return"], "CartPole episodes end within a few thousand steps"
  assert scalars(run_dir, "replay_server")["replay/size"][-1][1] > 0
  evals = scalars(run_dir, "evaluator")["eval/avg_return"]
  assert evals and evals[-1][0] >= 3000  # x-axis: env steps


def test_eval_of_a_run_directory(trained_run):
  run_dir, _ = trained_run
  result = run_cli("eval", run_dir, "--episodes", "5", "--seed", "3", cwd=REPO)
  assert result.returncode == 0, result.stderr
  assert len(result.stdout.strip().splitlines()) == 1
  assert "avg return" in result.stdout
  summary = json.loads((run_dir / "eval" / "summary.json").read_text())
  assert summary["episodes"] == 5 and summary["env"] == "CartPole-v1"
  assert summary["train_step"] == json.loads((run_dir / "status.json").read_text())["train_step"]
  with open(run_dir / "eval" / "episodes.csv") as f:
    rows = list(csv.DictReader(f))
  assert [int(r["seed"]) for r in rows] == [3, 4, 5, 6, 7]
  assert np.mean([float(r["return"]) for r in rows]) == pytest.approx(summary["avg_return"])


def test_exports_load_without_reverie_and_agree(trained_run, tmp_path):
  run_dir, _ = trained_run
  import tensorflow_probability  # noqa: F401  (PolicySaver's policies need its types)
  from tf_agents.trajectories import time_step as ts
  policy = tf.saved_model.load(str(run_dir / "policies" / "greedy"))
  observations = np.random.default_rng(0).uniform(-0.2, 0.2, (16, 4)).astype(np.float32)
  step = ts.TimeStep(tf.fill([16], 1), tf.zeros([16]), tf.ones([16]), tf.constant(observations))
  saved_actions = policy.action(step).action.numpy()

  interpreter = tf.lite.Interpreter(model_path=str(run_dir / "policies" / "greedy.tflite"))
  (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
  interpreter.resize_tensor_input(source["index"], [16, 4])
  interpreter.allocate_tensors()
  interpreter.set_tensor(source["index"], observations)
  interpreter.invoke()
  np.testing.assert_array_equal(interpreter.get_tensor(target["index"]), saved_actions)

  # reverie eval gives the same returns for the SavedModel and the .tflite file.
  runs = {}
  for name, path in [("saved", run_dir / "policies" / "greedy"),
                     ("tflite", run_dir / "policies" / "greedy.tflite")]:
    out = tmp_path / name
    result = run_cli("eval", path, "--env", "CartPole-v1", "--episodes", "3", "--output", out,
                     cwd=REPO)
    assert result.returncode == 0, result.stderr
    runs[name] = json.loads((out / "summary.json").read_text())
  assert runs["saved"]["avg_return"] == runs["tflite"]["avg_return"]


@pytest.mark.parametrize("env_id", ["corridor_env:Corridor-v0", "gym:CartPole-v1"])
def test_other_environment_kinds_train(tmp_path, env_id):
  (tmp_path / "corridor_env.py").write_text(CUSTOM_ENV)
  run_dir = tmp_path / "run"
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, "--set", f"env.id={env_id}",
                   *SHORT_RUN, "--set", "run.max_env_steps=1500", "--set", "replay.min_size=300",
                   cwd=tmp_path)
  assert result.returncode == 0, result.stdout + result.stderr
  status = json.loads((run_dir / "status.json").read_text())
  assert status["status"] == "finished" and status["train_step"] > 0
  assert (run_dir / "policies" / "greedy.tflite").exists()
