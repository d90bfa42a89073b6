"""The Ray launcher with real Ray on this machine: local clusters, two nodes, Ray Train.

Every run is the real `reverie train` command with `run.launcher=ray`; each
role is a Ray actor in its own process. The two-node cluster is Ray's own
`ray.cluster_utils.Cluster` (two raylets on this host), standing in for two
machines.
"""

import json
import os
import signal
import subprocess
import time

from conftest import REPO, REVERIE, SHORT_RUN, run_cli, scalars

RAY = ["--set", "run.launcher=ray"]
ROLES = {"replay_server_0", "learner_0", "actor_0", "actor_1", "evaluator_0"}


def _status(run_dir):
  return json.loads((run_dir / "status.json").read_text())


def _assert_every_role_reported(run_dir, actors=2):
  assert scalars(run_dir, "learner")["learner/loss"]
  assert scalars(run_dir, "replay_server")["replay/size"]
  assert scalars(run_dir, "evaluator")["eval/avg_return"]
  for i in range(actors):
    assert scalars(run_dir, f"actor_{i}")["actor/env_steps_per_second"]


def test_dqn_with_two_actors_trains_on_ray(tmp_path):
  run_dir = tmp_path / "run"
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, *SHORT_RUN, *RAY,
                   "--set", "actor.count=2", cwd=REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "Ray: started a local cluster" in result.stdout
  assert "Reverb listens on every interface" in result.stdout
  record = _status(run_dir)
  assert record["status"] == "finished" and record["env_steps"] >= 3000
  assert set(record["roles"]) == ROLES
  pids = {where["pid"] for where in record["roles"].values()}
  assert len(pids) == len(ROLES)  # one process per role
  for role in ROLES:
    name, index = role.rsplit("_", 1)
    assert int((run_dir / "pids" / role).read_text()) == record["roles"][role]["pid"]
    assert (run_dir / "logs" / f"{role}.log").read_text().strip(), role
  _assert_every_role_reported(run_dir)
  assert (run_dir / "policies" / "greedy" / "saved_model.pb").is_file()
  assert list((run_dir / "replay").glob("*/DONE"))


def test_killed_actor_comes_back_and_the_run_ends_normally(tmp_path):
  run_dir = tmp_path / "run"
  # The rate limiter holds the actors to one env step per train step (batch 256 at 256
  # samples per insert), so the run lasts long enough for Ray to bring the actor back.
  process = subprocess.Popen(
      [str(REVERIE), "train", "dqn_cartpole", "--run-dir", str(run_dir), *RAY,
       "--set", "actor.count=2", "--set", "actor.envs_per_actor=4",
       "--set", "run.max_env_steps=30000", "--set", "run.stop_at_return=null",
       "--set", "replay.samples_per_insert=256", "--set", "replay.min_size=500",
       "--set", "eval.interval_steps=10000", "--set", "eval.episodes=4"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
  try:
    log = run_dir / "logs" / "actor_0.log"
    deadline = time.monotonic() + 180
    while "environments of" not in (log.read_text() if log.exists() else ""):
      assert process.poll() is None, process.communicate()
      assert time.monotonic() < deadline, "actor_0 never started"
      time.sleep(0.5)
    time.sleep(2)
    first_pid = int((run_dir / "pids" / "actor_0").read_text())
    os.kill(first_pid, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=300)
  finally:
    if process.poll() is None:
      os.killpg(process.pid, signal.SIGKILL)
  assert process.returncode == 0, stdout + stderr
  record = _status(run_dir)
  assert record["status"] == "finished" and record["env_steps"] >= 30000
  assert record["roles"]["actor_0"]["restarts"] == 1
  second_pid = int((run_dir / "pids" / "actor_0").read_text())
  assert second_pid != first_pid and second_pid == record["roles"]["actor_0"]["pid"]
  assert "restart 1" in log.read_text()
  actor = scalars(run_dir, "actor_0")
  [(restart_step, restarts)] = actor["actor/restarts"]
  assert restarts == 1.0
  # The new process collected: actor_0 reported env steps/s after the run's env step at its start.
  assert max(step for step, _ in actor["actor/env_steps_per_second"]) > restart_step


def test_two_node_cluster_spreads_the_actors(tmp_path):
  from ray.cluster_utils import Cluster  # pylint: disable=g-import-not-at-top
  cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 3})
  try:
    cluster.add_node(num_cpus=3)
    cluster.wait_for_nodes()
    address = cluster.address
    run_dir = tmp_path / "run"
    result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, *SHORT_RUN, *RAY,
                     "--set", "actor.count=2", "--set", f"run.ray_address={address}", cwd=REPO)
  finally:
    cluster.shutdown()
  assert result.returncode == 0, result.stdout + result.stderr
  assert f"Ray: joined the cluster at {address}" in result.stdout
  record = _status(run_dir)
  assert record["status"] == "finished"
  actor_nodes = {record["roles"][f"actor_{i}"]["node"] for i in range(2)}
  assert len(actor_nodes) == 2, record["roles"]
  _assert_every_role_reported(run_dir)


def test_multi_worker_learner_runs_as_ray_train_workers(tmp_path):
  run_dir = tmp_path / "run"
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, *SHORT_RUN, *RAY,
                   "--set", "strategy.kind=multi_worker", "--set", "strategy.workers=2",
                   cwd=REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  record = _status(run_dir)
  assert record["status"] == "finished" and record["train_step"] > 0
  assert record["roles"]["learner_0"]["pid"] != record["roles"]["learner_1"]["pid"]
  assert "learner worker 1 of 2" in (run_dir / "logs" / "learner_1.log").read_text()
  assert "2 replicas" in (run_dir / "logs" / "learner_0.log").read_text()
  assert scalars(run_dir, "learner")["learner/loss"]
  assert (run_dir / "policies" / "greedy" / "saved_model.pb").is_file()


def test_ctrl_c_leaves_a_run_that_resumes_on_ray(tmp_path):
  run_dir = tmp_path / "run"
  process = subprocess.Popen(
      [str(REVERIE), "train", "dqn_cartpole", "--run-dir", str(run_dir), *RAY,
       "--set", "run.max_env_steps=10000000", "--set", "run.stop_at_return=null"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
  try:
    deadline = time.monotonic() + 180
    while not _trained(run_dir):
      assert process.poll() is None, process.communicate()
      assert time.monotonic() < deadline, "the learner never trained"
      time.sleep(1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=180)
  finally:
    if process.poll() is None:
      os.killpg(process.pid, signal.SIGKILL)
  assert process.returncode == 130, stdout + stderr
  assert "Traceback" not in stderr, stderr
  record = _status(run_dir)
  assert record["status"] == "interrupted"
  assert list((run_dir / "checkpoints").glob("*.index"))
  assert list((run_dir / "replay").glob("*/DONE"))
  stopped_at = record["env_steps"]
  result = run_cli("train", "--resume", run_dir, "--set", f"run.max_env_steps={stopped_at + 2000}",
                   "--set", "eval.interval_steps=1000", "--set", "eval.episodes=4", cwd=REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "resumed from train step" in (run_dir / "logs" / "learner_0.log").read_text()
  record = _status(run_dir)
  assert record["status"] == "finished" and record["env_steps"] >= stopped_at + 2000


def _trained(run_dir) -> bool:
  """The learner has written its first loss."""
  return (run_dir / "tb" / "learner").is_dir() and \
      bool(scalars(run_dir, "learner").get("learner/loss"))
