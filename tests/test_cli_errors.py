"""Bad input through the real CLI: exit code 2, one clear line, no traceback, nothing lost."""

import json
import socket

import pytest

from conftest import REPO, run_cli


def assert_one_line_error(result, *fragments):
  assert result.returncode == 2, result.stdout + result.stderr
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith("reverie: error: "), lines[0]
  assert "Traceback" not in result.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args, fragments", [
    (["--set", "learner.batchsize=64"], ["learner.batchsize", "did you mean learner.batch_size"]),
    (["--set", "learner.batch_size=-4"], ["learner.batch_size", "must be >= 1", "-4"]),
    (["--set", "learner.batch_size=lots"], ["learner.batch_size", "lots"]),
    (["--set", "strategy.kind=warp"], ["strategy.kind", "warp", "default, one_device"]),
    (["--set", "replay.port"], ["--set 'replay.port'", "KEY=VALUE"]),
    (["--set", "strategy.kind=tpu"], ["strategy.tpu_address", "tpu needs", "grpc://"]),
    (["--set", "env.id=CartPol-v1"], ["env.id", "CartPol-v1", "Did you mean"]),
    (["--set", "env.id=Pendulum-v1"], ["env.id", "Pendulum-v1", "Box action space", "Discrete"]),
    (["--set", "env.id=nomodule:Thing-v0"], ["env.id", "cannot import module 'nomodule'"]),
    (["--set", "run.launcher=slurm"], ["run.launcher", "local, ray", "slurm"]),
    (["--set", "run.launcher=ray", "--set", "actor.num_cpus=-1"], ["actor.num_cpus", ">= 0"]),
    (["--set", "run.launcher=ray", "--set", "strategy.kind=multi_worker",
      "--set", "learner.num_gpus=-1"], ["learner.num_gpus", ">= 0"]),
])
def test_train_rejects_bad_input(tmp_path, args, fragments):
  run_dir = tmp_path / "run"
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, *args, cwd=REPO)
  assert_one_line_error(result, *fragments)
  assert not run_dir.exists(), "a rejected run must leave nothing behind"


def test_ray_cluster_that_does_not_answer(tmp_path):
  with socket.socket() as probe:  # a port where nothing listens
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  run_dir = tmp_path / "run"
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, "--set", "run.launcher=ray",
                   "--set", f"run.ray_address=127.0.0.1:{port}", cwd=REPO)
  assert_one_line_error(result, f"run.ray_address 127.0.0.1:{port}", "no Ray cluster answers",
                        "ray start --head")
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, "--set", "run.launcher=ray",
                   cwd=REPO, env={"RAY_ADDRESS": f"127.0.0.1:{port}"})
  assert_one_line_error(result, f"RAY_ADDRESS 127.0.0.1:{port}", "no Ray cluster answers")
  assert not run_dir.exists()


def test_ray_learner_asking_for_a_gpu_this_machine_lacks(tmp_path):
  """Real Ray on a machine without GPUs (this one): the local cluster has none to give."""
  run_dir = tmp_path / "run"
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, "--set", "run.launcher=ray",
                   "--set", "learner.num_gpus=1", cwd=REPO)
  assert_one_line_error(result, "learner.num_gpus", "asks for 1 GPU(s)", "has 0")
  assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"


def test_ray_launcher_without_ray_names_the_extra(monkeypatch):
  """The extra is installed here (make test), so its absence is simulated at the import check."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  from reverie.launch.config_schema import check_available  # pylint: disable=g-import-not-at-top
  from reverie.launch.errors import ReverieError  # pylint: disable=g-import-not-at-top
  config = load_config("dqn_cartpole", ["run.launcher=ray"]).config
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "ray" else real_find_spec(name, *a))
  with pytest.raises(ReverieError, match=r"run.launcher: ray is not installed.*reverie\[ray\]"):
    check_available(config)


def test_missing_config_file(tmp_path):
  result = run_cli("train", tmp_path / "nope.yaml", cwd=REPO)
  assert_one_line_error(result, "nope.yaml", "not found")


def test_resume_needs_a_run_with_checkpoints(tmp_path):
  result = run_cli("train", "--resume", tmp_path / "nothing", cwd=REPO)
  assert_one_line_error(result, "--resume", "nothing", "does not exist")
  run_dir = tmp_path / "fresh"
  (run_dir / "checkpoints").mkdir(parents=True)
  (run_dir / "config.yaml").write_text((REPO / "configs" / "dqn_cartpole.yaml").read_text())
  result = run_cli("train", "--resume", run_dir, cwd=REPO)
  assert_one_line_error(result, "--resume", "no checkpoint in", "start a new run")
  assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "config.yaml"]
  result = run_cli("train", cwd=REPO)
  assert_one_line_error(result, "give a CONFIG", "--resume RUN_DIR")


def test_malformed_yaml_names_the_line(tmp_path):
  path = tmp_path / "bad.yaml"
  path.write_text("seed: 0\nlearner:\n  batch_size: [64\n")
  result = run_cli("train", path, cwd=REPO)
  assert_one_line_error(result, "bad.yaml:", "malformed YAML")


def test_busy_replay_port_is_named(tmp_path):
  with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as busy:
    busy.bind(("::", 0))
    busy.listen()
    port = busy.getsockname()[1]
    result = run_cli("train", "dqn_cartpole", "--run-dir", tmp_path / "run",
                     "--set", f"replay.port={port}", cwd=REPO)
  assert_one_line_error(result, f"port {port} is busy")


def test_existing_run_directory_is_not_overwritten(tmp_path):
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  (run_dir / "precious.txt").write_text("keep me")
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, cwd=REPO)
  assert_one_line_error(result, "already holds files")
  assert (run_dir / "precious.txt").read_text() == "keep me"


def test_eval_of_a_missing_path(tmp_path):
  result = run_cli("eval", tmp_path / "nothing-here", cwd=REPO)
  assert_one_line_error(result, "nothing-here", "no such file or directory")


def test_eval_of_something_that_is_not_a_policy(tmp_path):
  (tmp_path / "notes").mkdir()
  result = run_cli("eval", tmp_path / "notes", "--env", "CartPole-v1", cwd=REPO)
  assert_one_line_error(result, "not a policy")


def test_eval_of_a_corrupt_tflite_file(tmp_path):
  path = tmp_path / "policy.tflite"
  path.write_bytes(b"not a flatbuffer at all")
  result = run_cli("eval", path, "--env", "CartPole-v1", cwd=REPO)
  assert_one_line_error(result, "policy.tflite", "not a valid .tflite model")


def test_config_prints_every_key_with_type_and_doc():
  result = run_cli("config", "dqn_cartpole", "--set", "learner.batch_size=512", cwd=REPO)
  assert result.returncode == 0, result.stderr
  rows = {line.split()[0]: line for line in result.stdout.splitlines()}
  assert "512" in rows["learner.batch_size"] and "int" in rows["learner.batch_size"]
  assert "Global batch size" in rows["learner.batch_size"]
  for key in ["seed", "env.id", "run.max_env_steps", "run.stop_at_return", "actor.count",
              "actor.envs_per_actor", "actor.weight_update_interval_steps", "replay.port",
              "learner.export_interval_steps", "strategy.kind", "strategy.devices",
              "strategy.workers", "strategy.tpu_address", "eval.episodes", "eval.interval_steps"]:
    assert key in rows, key


def test_eval_on_an_environment_the_policy_does_not_fit(trained_run):
  run_dir, _ = trained_run
  result = run_cli("eval", run_dir / "policies" / "greedy.tflite", "--env", "Acrobot-v1", cwd=REPO)
  assert_one_line_error(result, "shape [4]", "Acrobot-v1 gives [6]")
