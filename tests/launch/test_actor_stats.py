"""An actor's TensorBoard summaries: a run shorter than one summary window still has them."""

import numpy as np
import pytest

from conftest import scalars
from reverie.envs.batched import BatchStep
from reverie.launch import contract
from reverie.launch.episode_stats import EpisodeStats
from reverie.launch.run_state import RunState


def test_a_short_actor_writes_its_rate_and_returns_on_close(tmp_path):
  run_dir = contract.RunDir(tmp_path)
  state = RunState(max_env_steps=1_000)
  stats = EpisodeStats(2, run_dir, 0, rows_per_booking=8)
  lanes = np.zeros(2, bool)
  for ended in (False, False, True):  # well under the 2 s between summaries
    stats.add(BatchStep(observation=np.zeros((2, 4), np.float32), reward=np.ones(2),
                        terminated=np.full(2, ended), truncated=lanes, started=lanes), state)
  stats.close(state)
  written = scalars(tmp_path, "actor_0")
  assert [step for step, _ in written["actor/env_steps_per_second"]] == [6]
  assert written["actor/episode_return"] == [(6, 3.0)]
  assert state.env_steps == 6 and state.episodes == 2


def test_returns_and_lengths_follow_each_lane_across_its_resets(tmp_path):
  # Lane 0 (reward 1): ends at step 2, is reset at 3, ends again at 5. Lane 1 (reward 2):
  # cut at step 4 (truncated), reset at 6. Reset steps carry no reward and no length.
  state = RunState(max_env_steps=1_000)
  stats = EpisodeStats(2, contract.RunDir(tmp_path), 0, rows_per_booking=4)
  events = {2: ("terminated", 0), 3: ("started", 0), 4: ("truncated", 1), 5: ("terminated", 0),
            6: ("started", 1)}
  for t in range(1, 7):
    flags = {name: np.zeros(2, bool) for name in ("terminated", "truncated", "started")}
    if t in events:
      name, lane = events[t]
      flags[name][lane] = True
    reward = np.where(flags["started"], 0.0, [1.0, 2.0]).astype(np.float32)
    stats.add(BatchStep(observation=np.zeros((2, 4), np.float32), reward=reward, **flags), state)
  stats.close(state)
  written = scalars(tmp_path, "actor_0")
  assert written["actor/episode_return"] == [(10, 4.0)]  # (2 + 8 + 2) / 3
  assert written["actor/episode_length"] == [(10, pytest.approx((2 + 4 + 2) / 3))]
  assert state.env_steps == 10 and state.episodes == 3
  assert sorted(state.recent_returns) == [2.0, 2.0, 8.0]


def test_a_batch_step_computes_ended_unless_given():
  step = BatchStep(observation=np.zeros((3, 1)), reward=np.zeros(3),
                   terminated=np.array([True, False, False]),
                   truncated=np.array([False, True, False]), started=np.zeros(3, bool))
  assert step.ended.tolist() == [True, True, False]


class _RecordingState(RunState):
  """A RunState that keeps every return booked into it (RunState keeps the last 100)."""

  def __post_init__(self):
    super().__post_init__()
    self.all_returns = []

  def add_env_steps(self, steps, returns):
    self.all_returns += returns
    return super().add_env_steps(steps, returns)


def _per_step_books(steps):
  """What an actor books, counted one vector step at a time: (env steps, returns in order)."""
  lanes = len(steps[0].reward)
  running, moved, returns = np.zeros(lanes), 0, []
  for step in steps:
    running[step.started] = 0.0  # a reset step starts the episode: no reward
    running += np.where(step.started, 0.0, step.reward)
    moved += int(np.count_nonzero(~step.started))
    returns += running[step.ended & ~step.started].tolist()
  return moved, returns


def test_books_of_many_rows_match_the_per_step_count_on_cartpole(tmp_path):
  # 3,000 vector steps of 16 lanes under random actions: about 2,400 episodes, rows summed
  # many times over (open episodes carried from one sum to the next).
  from reverie.envs.registry import make_batched_env  # pylint: disable=g-import-not-at-top
  lanes = 16
  env = make_batched_env("CartPole-v1", lanes)
  env.reset(seed=3)
  rng = np.random.default_rng(3)
  steps = [env.step(rng.integers(0, 2, lanes)) for _ in range(3_000)]
  env.close()
  state = _RecordingState(max_env_steps=10**9)
  stats = EpisodeStats(lanes, contract.RunDir(tmp_path), 0, rows_per_booking=8)
  booked = [stats.add(step, state) for step in steps]
  stats.close(state)
  moved, returns = _per_step_books(steps)
  assert len(returns) > 1_000
  assert state.env_steps == moved == sum(booked)
  assert state.all_returns == returns and state.episodes == len(returns)


def test_env_steps_are_booked_every_rows_per_booking_vector_steps(tmp_path):
  state = RunState(max_env_steps=1_000)
  stats = EpisodeStats(3, contract.RunDir(tmp_path), 0, rows_per_booking=4)
  flags = {name: np.zeros(3, bool) for name in ("terminated", "truncated", "started")}
  step = BatchStep(observation=np.zeros((3, 4), np.float32), reward=np.ones(3, np.float32),
                   **flags)
  assert [stats.add(step, state) for _ in range(3)] == [0, 0, 0] and state.env_steps == 0
  assert stats.add(step, state) == 12 and state.env_steps == 12
  stats.add(step, state)
  stats.close(state)
  assert state.env_steps == 15
