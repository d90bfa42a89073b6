"""The learner's feed converts several batches per map call: every batch is still whole items."""

import numpy as np
import reverb
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from reverie.agents import replay
from reverie.agents.dqn import dataset as dqn_dataset
from reverie.agents.dqn import transitions

LANES, K_ROWS, ITEMS, N_STEP, GAMMA = 4, 2, 40, 2, 0.5


OBSERVATION = array_spec.ArraySpec((3,), np.float32)
ACTION = array_spec.BoundedArraySpec((), np.int64, 0, ITEMS)


def _server():
  signature = transitions.item_signature(OBSERVATION, ACTION, LANES, K_ROWS, N_STEP)
  table = reverb.Table("t", sampler=reverb.selectors.Uniform(), remover=reverb.selectors.Fifo(),
                       max_size=ITEMS, rate_limiter=reverb.rate_limiters.MinSize(1),
                       signature=signature)
  server = reverb.Server([table])
  steps = K_ROWS + N_STEP - 1
  ones = np.ones((steps, LANES), bool)
  with reverb.Client(f"localhost:{server.port}").trajectory_writer(num_keep_alive_refs=1) as w:
    for item in range(ITEMS):
      # Every transition of item i carries i in its observation's feature 0 and its action,
      # and its step in feature 1. Each step ends its episode (truncated): 1-step returns,
      # bootstrapped from the next observation (discount gamma^0); lane 3 carries nothing.
      observations = np.zeros((steps + 1, LANES, 3), np.float32)
      observations[..., 0], observations[..., 1] = item, np.arange(steps + 1)[:, None]
      replay.write_item(w, transitions.make_item(
          observations, np.full((steps, LANES), item), reward=ones, ended=ones,
          terminated=~ones, started=np.tile([False, False, False, True], (steps, 1))), ["t"])
    w.flush()
  return server


def _make_dataset(server, batch_size):
  return dqn_dataset.make_dataset(f"localhost:{server.port}", "t", ACTION, batch_size, 1000,
                                  N_STEP, GAMMA)


def test_batches_of_whole_items_keep_each_transition_together():
  server = _server()
  batch_size = 4 * K_ROWS * LANES  # four whole items a batch
  try:
    dataset = _make_dataset(server, batch_size)
    batches = 3 * dqn_dataset._BATCHES_PER_MAP + 1  # pylint: disable=protected-access
    for experience, extra in dataset.take(batches):
      assert extra == ()
      assert experience.time_step.observation.shape == (batch_size, 3)
      obs, action = experience.time_step.observation.numpy(), experience.action_step.action.numpy()
      np.testing.assert_array_equal(obs[:, 0], action)
      next_observation = experience.next_time_step.observation.numpy()  # its own next one
      np.testing.assert_array_equal(next_observation[:, 0], action)
      np.testing.assert_array_equal(next_observation[:, 1], obs[:, 1] + 1)
      # Whole items: each item id fills a multiple of K x N rows of the batch.
      _, counts = np.unique(action, return_counts=True)
      assert all(c % (K_ROWS * LANES) == 0 for c in counts)
      valid = experience.time_step.step_type.numpy() == ts.StepType.MID
      assert valid.sum() == batch_size * 3 // 4
      np.testing.assert_array_equal(experience.next_time_step.discount.numpy(), 1.0)
      np.testing.assert_array_equal(experience.next_time_step.reward.numpy(), 1.0)
  finally:
    server.stop()


def test_items_split_into_batches_of_consecutive_rows_of_one_item():
  server = _server()
  batch_size = K_ROWS * LANES // 2  # two batches an item
  try:
    dataset = _make_dataset(server, batch_size)
    per_map = dqn_dataset._BATCHES_PER_MAP  # pylint: disable=protected-access
    batches = [b for b, _ in dataset.take(2 * per_map + 1)]
    for experience in batches:
      assert experience.time_step.observation.shape == (batch_size, 3)
      action = experience.action_step.action.numpy()
      assert len(set(action)) == 1  # one item's rows
      observation = experience.time_step.observation.numpy()
      next_observation = experience.next_time_step.observation.numpy()
      np.testing.assert_array_equal(next_observation[:, 0], action)
      np.testing.assert_array_equal(next_observation[:, 1], observation[:, 1] + 1)
      valid = experience.time_step.step_type.numpy() == ts.StepType.MID
      assert valid.tolist() == [True, True, True, False]  # one row of the item: its four lanes
    # Both halves of an item: the first batch of a pair holds lanes 0-3 of row 0, the second row 1.
    for first, second in zip(batches[0::2], batches[1::2]):
      assert first.action_step.action.numpy()[0] == second.action_step.action.numpy()[0]
      assert first.time_step.observation.numpy()[0, 1] == 0
      assert second.time_step.observation.numpy()[0, 1] == 1
  finally:
    server.stop()
