"""An actor's TensorBoard summaries: a run shorter than one summary window still has them."""

import numpy as np

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
