"""Shared helpers: run the real `reverie` command in a subprocess."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
REVERIE = pathlib.Path(sys.executable).parent / "reverie"

# Short runs: a few thousand env steps, small evals, frequent exports.
SHORT_RUN = [
    "--set", "run.max_env_steps=3000", "--set", "run.stop_at_return=null",
    "--set", "eval.interval_steps=1500", "--set", "eval.episodes=4",
    "--set", "replay.min_size=500",
]

# A user's own gymnasium environment, importable as corridor_env:Corridor-v0.
CUSTOM_ENV = '''
import gymnasium
import numpy as np


class Corridor(gymnasium.Env):
  """Walk right from 0 to 5; -0.1 a step, +1 at the end; at most 20 steps."""

  observation_space = gymnasium.spaces.Box(0.0, 5.0, (1,), np.float32)
  action_space = gymnasium.spaces.Discrete(2)

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    self.position = 0.0
    return np.array([self.position], np.float32), {}

  def step(self, action):
    self.position = float(np.clip(self.position + (1 if action == 1 else -1), 0, 5))
    done = self.position >= 5
    return np.array([self.position], np.float32), (1.0 if done else -0.1), done, False, {}


gymnasium.register(id="Corridor-v0", entry_point=Corridor, max_episode_steps=20)
'''


def scalars(run_dir, role):
  """{tag: [(step, value), ...]} from a role's TensorBoard event files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # pylint: disable=g-import-not-at-top
  events = EventAccumulator(str(run_dir / "tb" / role), size_guidance={"tensors": 0})
  events.Reload()
  return {tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
          for tag in events.Tags()["tensors"]}


def run_cli(*args, cwd=None, timeout=300, env=None) -> subprocess.CompletedProcess:
  """Runs `reverie ARGS` and returns the finished process (text output)."""
  environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
  return subprocess.run([str(REVERIE), *map(str, args)], cwd=cwd, capture_output=True,
                        text=True, timeout=timeout, env=environment)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
  """One short real training run of the default config, shared by the e2e tests."""
  run_dir = tmp_path_factory.mktemp("e2e") / "run"
  result = run_cli("train", "dqn_cartpole", "--run-dir", run_dir, *SHORT_RUN,
                   "--set", "learner.export_interval_steps=50", cwd=REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  return run_dir, result


def _split_cpu_in_two() -> None:
  """Two logical CPUs for in-process tests of MirroredStrategy (no GPU exists here).

  Set before TensorFlow's runtime starts; everything else runs on CPU:0.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


_split_cpu_in_two()
