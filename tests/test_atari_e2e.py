"""Atari end to end through the real CLI: Pong with DQN and PPO, replay bytes, eval --video."""

import json
import sys

import pytest

from conftest import REPO, run_cli, scalars

# A few thousand env steps of Pong with small settings (each run well under a minute here).
SHORT_PONG = ["--set", "run.stop_at_return=null", "--set", "eval.episodes=2",
              "--set", "eval.interval_steps=100000", "--set", "env.max_episode_steps=400",
              "--set", "actor.envs_per_actor=4"]
BYTES_PER_TRANSITION_BOUND = 8_000  # one 84x84 frame is 7,056 bytes before compression


def test_dqn_pong_trains_stores_frames_once_and_records_video(tmp_path):
  run_dir = tmp_path / "dqn"
  result = run_cli("train", "dqn_atari", "--run-dir", run_dir, *SHORT_PONG,
                   "--set", "run.max_env_steps=3000", "--set", "replay.min_size=500",
                   "--set", "replay.sampler=prioritized", cwd=REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  status = json.loads((run_dir / "status.json").read_text())
  assert status["status"] == "finished" and status["train_step"] > 0
  assert (run_dir / "policies" / "greedy.tflite").exists()
  measured = scalars(run_dir, "replay_server")["replay/bytes_per_transition"]
  assert 0 < measured[-1][1] <= BYTES_PER_TRANSITION_BOUND, measured
  logs = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
  assert "bytes per transition" in logs

  result = run_cli("eval", run_dir, "--episodes", "1", "--video", cwd=REPO)
  assert result.returncode == 0, result.stderr
  summary = json.loads((run_dir / "eval" / "summary.json").read_text())
  assert summary["env"] == "ALE/Pong-v5" and summary["avg_return"] <= -1  # raw, unclipped score
  videos = list((run_dir / "eval" / "videos").glob("episode_0.*"))
  assert videos and videos[0].stat().st_size > 10_000


def test_ppo_pong_trains(tmp_path):
  run_dir = tmp_path / "ppo"
  result = run_cli("train", "ppo_atari", "--run-dir", run_dir, *SHORT_PONG,
                   "--set", "run.max_env_steps=2048", "--set", "agent.rollout_steps=64",
                   "--set", "learner.batch_size=128", "--set", "agent.num_epochs=2", cwd=REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  status = json.loads((run_dir / "status.json").read_text())
  assert status["status"] == "finished" and status["train_step"] > 0
  assert status["reason"] == "reached run.max_env_steps"  # reset steps are not env steps
  assert (run_dir / "policies" / "greedy" / "saved_model.pb").exists()


def test_replay_memory_per_transition_is_under_one_frame():
  """Resident memory a real Reverb table grows by, per transition of real Pong frames."""
  sys.path.insert(0, str(REPO / "tests" / "agents"))
  import replay_memory  # pylint: disable=g-import-not-at-top
  measured = replay_memory.measure(8_000)
  assert measured["transitions"] >= 8_000
  assert measured["bytes_per_transition"] <= BYTES_PER_TRANSITION_BOUND, measured
