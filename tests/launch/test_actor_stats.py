"""An actor's TensorBoard summaries: a run shorter than one summary window still has them."""

import numpy as np
import pytest

from conftest import scalars
from reverie.envs.batched import BatchStep
from reverie.launch import contract
from reverie.launch.actor import EpisodeStats
from reverie.launch.run_state import RunState


def test_a_short_actor_writes_its_rate_and_returns_on_close(tmp_path):
  run_dir = contract.RunDir(tmp_path)
  state = RunState(max_env_steps=1_000)
  stats = EpisodeStats(2, run_dir, 0)
  lanes = np.zeros(2, bool)
  for ended in (False, False, True):  # well under the 2 s between summaries
    stats.add(BatchStep(observation=np.zeros((2, 4), np.float32), reward=np.ones(2),
                        terminated=np.full(2, ended), truncated=lanes, started=lanes), state)
  stats.close()
  written = scalars(tmp_path, "actor_0")
  assert [step for step, _ in written["actor/env_steps_per_second"]] == [6]
  assert written["actor/episode_return"] == [(6, 3.0)]
  assert state.env_steps == 6 and state.episodes == 2


def test_returns_and_lengths_follow_each_lane_across_its_resets(tmp_path):
  # Lane 0 (reward 1): ends at step 2, is reset at 3, ends again at 5. Lane 1 (reward 2):
  # cut at step 4 (truncated), reset at 6. Reset steps carry no reward and no length.
  state = RunState(max_env_steps=1_000)
  stats = EpisodeStats(2, contract.RunDir(tmp_path), 0)
  events = {2: ("terminated", 0), 3: ("started", 0), 4: ("truncated", 1), 5: ("terminated", 0),
            6: ("started", 1)}
  for t in range(1, 7):
    flags = {name: np.zeros(2, bool) for name in ("terminated", "truncated", "started")}
    if t in events:
      name, lane = events[t]
      flags[name][lane] = True
    reward = np.where(flags["started"], 0.0, [1.0, 2.0]).astype(np.float32)
    stats.add(BatchStep(observation=np.zeros((2, 4), np.float32), reward=reward, **flags), state)
  stats.close()
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
