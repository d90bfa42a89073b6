"""Other strategies end to end through the real CLI: mirrored on two logical CPUs,
multi_worker as two learner processes on 127.0.0.1, and a worker that dies.

No GPU exists here: `mirrored` splits the CPU into two logical devices, which
is the same code path as two GPUs up to device names.
"""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import REPO, REVERIE, SHORT_RUN, run_cli, scalars


def _one_replica_count(run_dir):
  counts = {value for _, value in scalars(run_dir, "learner")["learner/num_replicas"]}
  assert len(counts) == 1, counts
  return counts.pop()


def test_mirrored_trains_on_two_logical_devices(tmp_path):
  run_dir = tmp_path / "run"
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, *SHORT_RUN,
                   "--set", "strategy.kind=mirrored", "--set", "strategy.devices=2", cwd=REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  log = (run_dir / "logs" / "learner_0.log").read_text()
  assert "batch size 128: 64 per replica on 2 replicas" in log
  assert _one_replica_count(run_dir) == 2
  assert json.loads((run_dir / "status.json").read_text())["train_step"] > 0
  assert (run_dir / "policies" / "greedy.tflite").is_file()


@pytest.mark.parametrize("config, sets", [
    ("dqn_cartpole", SHORT_RUN),
    ("ppo_cartpole", ["--set", "run.max_env_steps=2048", "--set", "run.stop_at_return=null",
                      "--set", "eval.episodes=4"]),
])
def test_multi_worker_runs_two_learner_processes(tmp_path, config, sets):
  run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
  scratch.mkdir()
  result = run_cli("train", config, "--run-dir", run_dir, *sets,
                   "--set", "strategy.kind=multi_worker", "--set", "strategy.workers=2",
                   cwd=REPO, env={"TMPDIR": str(scratch)})
  assert result.returncode == 0, result.stdout + result.stderr
  status = json.loads((run_dir / "status.json").read_text())
  assert status["status"] == "finished" and status["train_step"] > 0
  for index in (0, 1):  # two learner processes, each with its log and pid
    assert (run_dir / "pids" / f"learner_{index}").is_file()
    log = (run_dir / "logs" / f"learner_{index}.log").read_text()
    assert f"learner worker {index} of 2" in log
  assert "per replica on 2 replicas" in (run_dir / "logs" / "learner_0.log").read_text()
  # The chief's outputs exist once; the other worker's went to a scratch
  # directory that is gone.
  assert _one_replica_count(run_dir) == 2
  checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt-*.index"))
  assert checkpoints == [f"ckpt-{status['train_step']}.index"]
  assert (run_dir / "policies" / "greedy" / "saved_model.pb").is_file()
  assert (run_dir / "policies" / "greedy.tflite").is_file()
  assert sorted(p.name for p in (run_dir / "tb").iterdir() if p.name.startswith("learner")) == [
      "learner"]
  assert not list(scratch.glob("reverie-worker*")), list(scratch.iterdir())
  assert not list(run_dir.rglob("reverie-worker*"))


def test_a_dead_worker_stops_the_run(tmp_path):
  run_dir = tmp_path / "run"
  process = subprocess.Popen(
      [str(REVERIE), "train", "dqn_cartpole", "--run-dir", str(run_dir),
       "--set", "run.max_env_steps=10000000", "--set", "run.stop_at_return=null",
       "--set", "strategy.kind=multi_worker", "--set", "strategy.workers=2"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env={**os.environ, "PYTHONUNBUFFERED": "1"})
  try:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the workers train together
      assert process.poll() is None, process.stderr.read()
      if _trained(run_dir):
        break
      time.sleep(0.5)
    else:
      pytest.fail("the learner workers never trained")
    worker_pids = [int((run_dir / "pids" / f"learner_{i}").read_text()) for i in (0, 1)]
    os.kill(worker_pids[1], signal.SIGKILL)
    killed_at = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    stopped_after = time.monotonic() - killed_at
  finally:
    process.kill()
  assert process.returncode == 1, stderr
  assert "learner worker 1 exited with code -9" in stderr, stderr
  assert "Traceback" not in stderr
  assert stopped_after < 30, stopped_after
  with pytest.raises(ProcessLookupError):  # the surviving worker was not left behind
    os.kill(worker_pids[0], 0)
  assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"


def _trained(run_dir) -> bool:
  events = list((run_dir / "tb" / "learner").glob("events*"))
  return bool(events) and "learner/loss" in scalars(run_dir, "learner")


def test_two_hosts_by_tf_config(tmp_path):
  """Two "hosts" on 127.0.0.1: `reverie train` with TF_CONFIG runs the chief; the other
  worker is started by hand (`learner_worker --remote`) with its own copy of the config."""
  import sys  # pylint: disable=g-import-not-at-top
  import portpicker  # pylint: disable=g-import-not-at-top
  ports, replay_port = [portpicker.pick_unused_port() for _ in range(2)], portpicker.pick_unused_port()
  cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
  tf_config = lambda index: json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
  run_dir, other_host = tmp_path / "run", tmp_path / "other_host"
  environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
  chief = subprocess.Popen(
      [str(REVERIE), "train", "dqn_cartpole", "--run-dir", str(run_dir), *SHORT_RUN,
       "--set", "strategy.kind=multi_worker", "--set", "strategy.workers=2",
       "--set", f"replay.port={replay_port}"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env={**environment, "TF_CONFIG": tf_config(0)})
  remote = None
  try:
    deadline = time.monotonic() + 60
    while not (run_dir / "config.yaml").is_file():
      assert chief.poll() is None and time.monotonic() < deadline, chief.stderr.read()
      time.sleep(0.1)
    other_host.mkdir()
    (other_host / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    with open(tmp_path / "remote.log", "w") as log:
      remote = subprocess.Popen(
          [sys.executable, "-m", "reverie.launch.learner_worker", str(other_host),
           f"localhost:{replay_port}", "--remote"],
          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
          env={**environment, "TF_CONFIG": tf_config(1)})
    stdout, stderr = chief.communicate(timeout=240)
    remote_out, _ = remote.communicate(timeout=60)
  finally:
    chief.kill()
    if remote is not None:
      remote.kill()
  assert chief.returncode == 0, stdout + stderr
  assert remote.returncode == 0, (tmp_path / "remote.log").read_text()[-3000:]
  status = json.loads((run_dir / "status.json").read_text())
  assert json.loads(remote_out.strip().splitlines()[-1]) == {"done": status["train_step"]}
  assert _one_replica_count(run_dir) == 2
  assert (run_dir / "policies" / "greedy.tflite").is_file()
  assert sorted(p.name for p in other_host.iterdir()) == ["config.yaml"]
  assert not (run_dir / "pids" / "learner_1").exists()  # not this host's process
