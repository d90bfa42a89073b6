"""Ctrl-C and SIGTERM stop a real training process cleanly with their exit codes."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import REPO, REVERIE


@pytest.mark.parametrize("sig, code, status", [(signal.SIGINT, 130, "interrupted"),
                                               (signal.SIGTERM, 143, "terminated")])
def test_signal_stops_training(tmp_path, sig, code, status):
  run_dir = tmp_path / "run"
  process = subprocess.Popen(
      [str(REVERIE), "train", "dqn_cartpole", "--run-dir", str(run_dir),
       "--set", "run.max_env_steps=10000000", "--set", "run.stop_at_return=null"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env={**os.environ, "PYTHONUNBUFFERED": "1"})
  try:
    deadline = time.monotonic() + 120
    while not list((run_dir / "tb").glob("actor_0/*")) and time.monotonic() < deadline:
      assert process.poll() is None, process.stderr.read()
      time.sleep(0.5)
    time.sleep(2)  # the actor is collecting
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
  finally:
    process.kill()
  assert process.returncode == code, stdout + stderr
  assert "Traceback" not in stderr, stderr
  record = json.loads((run_dir / "status.json").read_text())
  assert record["status"] == status
  assert record["env_steps"] > 0
  # Both the learner and the replay are checkpointed on the way out (resumable).
  assert list((run_dir / "checkpoints").glob("*.index"))
  assert list((run_dir / "replay").glob("*/DONE")), list((run_dir / "replay").iterdir())
