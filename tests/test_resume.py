"""Nothing lost: kill -9 and resume, a corrupt checkpoint, a NaN loss; real processes."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, REVERIE, run_cli, scalars

FAST_CHECKPOINTS = ["--set", "learner.checkpoint_interval_steps=200",
                    "--set", "replay.checkpoint_interval_seconds=1"]


def _prefixes(run_dir):
  """Checkpoint prefixes, highest train step first."""
  indexes = (run_dir / "checkpoints").glob("*.index")
  return sorted((str(p)[:-len(".index")] for p in indexes),
                key=lambda p: int(p.rsplit("-", 1)[1]), reverse=True)


def _counter(prefix, name):
  return int(tf.train.load_checkpoint(prefix).get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
  """A real run killed with SIGKILL (its whole process group) after two checkpoints."""
  run_dir = tmp_path_factory.mktemp("killed") / "run"
  process = subprocess.Popen(
      [str(REVERIE), "train", "dqn_cartpole", "--run-dir", str(run_dir),
       "--set", "run.max_env_steps=10000000", "--set", "run.stop_at_return=null",
       *FAST_CHECKPOINTS],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
  try:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
      assert process.poll() is None, process.stderr.read()
      replay = list((run_dir / "replay").glob("*/DONE")) if (run_dir / "replay").is_dir() else []
      if len(_prefixes(run_dir)) >= 2 and replay:
        break
      time.sleep(0.2)
    else:
      pytest.fail("no two checkpoints and a replay checkpoint within 120 s")
  finally:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
  assert not (run_dir / "status.json").exists(), "a killed run writes no status"
  return run_dir


def _copy(run_dir, tmp_path):
  copy = tmp_path / "run"
  shutil.copytree(run_dir, copy)
  return copy


def test_killed_run_resumes_with_its_replay(killed_run, tmp_path):
  run_dir = _copy(killed_run, tmp_path)
  newest = _prefixes(run_dir)[0]
  step, env_steps = _counter(newest, "train_step"), _counter(newest, "env_steps")
  assert step > 0 and env_steps > 0
  result = run_cli("train", "--resume", run_dir, "--set", f"run.max_env_steps={env_steps + 3000}",
                   cwd=REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  line = next(l for l in result.stdout.splitlines() if l.startswith("resumed from"))
  assert line.startswith(f"resumed from train step {step:,}, env step {env_steps:,}; "
                         "replay restored: "), line
  assert int(line.rsplit(": ", 1)[1].split()[0].replace(",", "")) > 0, line
  status = json.loads((run_dir / "status.json").read_text())
  assert status["status"] == "finished"
  assert status["train_step"] > step and status["env_steps"] >= env_steps + 3000
  losses = scalars(run_dir, "learner")["learner/loss"]
  assert max(s for s, _ in losses) > step
  lineage = json.loads((run_dir / "lineage.json").read_text())
  assert lineage["resumes"][-1]["train_step"] == step
  assert f"max_env_steps: {env_steps + 3000}" in (run_dir / "config.yaml").read_text()


def test_corrupt_newest_checkpoint_falls_back_and_stays(killed_run, tmp_path):
  run_dir = _copy(killed_run, tmp_path)
  newest, previous = _prefixes(run_dir)[:2]
  data = next((run_dir / "checkpoints").glob(f"{os.path.basename(newest)}.data-*"))
  garbled = bytearray(data.read_bytes())
  garbled[len(garbled) // 3: len(garbled) // 3 + 64] = b"\x17" * 64
  data.write_bytes(bytes(garbled))
  digest = hashlib.sha256(data.read_bytes()).hexdigest()
  # Read before the resumed run: its checkpoint rotation may delete `previous`.
  env_steps, train_step = _counter(previous, "env_steps"), _counter(previous, "train_step")
  result = run_cli("train", "--resume", run_dir, "--set", f"run.max_env_steps={env_steps + 2000}",
                   cwd=REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  assert f"checkpoint {os.path.basename(newest)} is unreadable" in result.stdout
  assert f"resuming from {os.path.basename(previous)}" in result.stdout
  assert f"resumed from train step {train_step:,}" in result.stdout
  assert hashlib.sha256(data.read_bytes()).hexdigest() == digest, "the corrupt file was changed"
  assert newest in [str(p)[:-len(".index")] for p in (run_dir / "checkpoints").glob("*.index")]


def test_no_readable_checkpoint_is_refused(killed_run, tmp_path):
  run_dir = _copy(killed_run, tmp_path)
  for index in (run_dir / "checkpoints").glob("*.index"):
    index.write_bytes(b"not a checkpoint")
  result = run_cli("train", "--resume", run_dir, cwd=REPO)
  assert result.returncode == 2, result.stdout + result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "no readable checkpoint" in lines[0], result.stderr
  assert all(p.read_bytes() == b"not a checkpoint"
             for p in (run_dir / "checkpoints").glob("*.index"))


NAN_ENV = '''
import gymnasium
import numpy as np
from gymnasium.envs.classic_control import CartPoleEnv

STEPS = [0]


class NanAfter(CartPoleEnv):
  """CartPole whose rewards turn NaN after 6,000 steps of all its instances."""

  def step(self, action):
    observation, reward, terminated, truncated, info = super().step(action)
    STEPS[0] += 1
    return observation, (np.nan if STEPS[0] > 6000 else reward), terminated, truncated, info


gymnasium.register(id="NanAfter-v0", entry_point=NanAfter, max_episode_steps=500)
'''


def test_nan_loss_stops_with_the_last_good_checkpoint(tmp_path):
  (tmp_path / "nan_env.py").write_text(NAN_ENV)
  run_dir = tmp_path / "run"
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir,
                   "--set", "env.id=nan_env:NanAfter-v0", "--set", "run.stop_at_return=null",
                   "--set", "run.max_env_steps=100000", "--set", "replay.min_size=500",
                   "--set", "learner.checkpoint_interval_steps=100", cwd=tmp_path,
                   env={"PYTHONPATH": str(tmp_path)})
  assert result.returncode == 1, result.stdout + result.stderr
  lines = result.stderr.strip().splitlines()
  # TF-Agents' own check stops inside a call ("near"), Reverie's after it ("at").
  match = re.search(r"loss is (nan|inf|NaN or Inf) (at|near) train step (\d+);", lines[0])
  assert len(lines) == 1 and match, result.stderr
  failed_at = int(match.group(3))
  newest = _prefixes(run_dir)[0]
  assert _counter(newest, "train_step") < failed_at
  reader = tf.train.load_checkpoint(newest)
  weights = [reader.get_tensor(name) for name, dtype in reader.get_variable_to_dtype_map().items()
             if dtype.is_floating]
  assert weights and all(np.isfinite(w).all() for w in weights), "the checkpoint holds NaN"
  assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"
