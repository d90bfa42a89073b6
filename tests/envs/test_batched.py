"""Batched environments: specs, the reset boundary, the three kinds of env.id."""

import numpy as np
import pytest

from conftest import CUSTOM_ENV
from reverie.envs.registry import UnknownEnvironment, env_spaces, make_batched_env



def test_cartpole_specs_and_shapes():
  env = make_batched_env("CartPole-v1", 3)
  assert env.observation_spec.shape == (4,) and env.observation_spec.dtype == np.float32
  assert env.action_spec.shape == () and (env.action_spec.minimum, env.action_spec.maximum) == (0, 1)
  obs = env.reset(seed=1)
  assert obs.shape == (3, 4) and obs.dtype == np.float32
  step = env.step(np.zeros(3, np.int64))
  assert step.observation.shape == (3, 4) and step.reward.dtype == np.float32
  env.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "gym:CartPole-v1"])
def test_a_finished_lane_resets_on_the_next_step(env_id):
  env = make_batched_env(env_id, 2)
  env.reset(seed=0)
  ended_at = None
  for t in range(200):  # always pushing left ends CartPole within a few dozen steps
    step = env.step(np.zeros(2, np.int64))
    if ended_at is None and step.terminated[0]:
      ended_at = t
      assert not step.started[0]
    elif ended_at is not None:
      assert step.started[0], "the step after the end must be the reset step"
      assert step.reward[0] == 0 and not step.terminated[0]
      assert abs(step.observation[0]).max() <= 0.05  # CartPole starts near the origin
      break
  assert ended_at is not None
  env.close()


def test_same_seed_same_episodes():
  def first_observations(seed):
    env = make_batched_env("CartPole-v1", 2)
    obs = env.reset(seed=seed)
    env.close()
    return obs
  np.testing.assert_array_equal(first_observations(7), first_observations(7))
  assert not np.array_equal(first_observations(7), first_observations(8))


def test_users_own_environment_from_module(tmp_path, monkeypatch):
  (tmp_path / "corridor_env.py").write_text(CUSTOM_ENV)
  monkeypatch.chdir(tmp_path)
  env = make_batched_env("corridor_env:Corridor-v0", 2)
  assert env.action_spec.maximum == 1 and env.observation_spec.shape == (1,)
  env.reset(seed=0)
  for _ in range(5):
    step = env.step(np.ones(2, np.int64))
  assert step.terminated.all() and np.allclose(step.reward, 1.0)
  env.close()


@pytest.mark.parametrize("env_id, message", [
    ("CartPol-v1", "Did you mean: `CartPole`"),
    ("no_such_module:Thing-v0", "cannot import module 'no_such_module'"),
    ("gym:CartPol-v1", "Did you mean: `CartPole`"),
])
def test_unknown_ids_explain_themselves(env_id, message):
  with pytest.raises(UnknownEnvironment, match=message):
    env_spaces(env_id)
