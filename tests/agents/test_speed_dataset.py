"""The learner's feed converts several batches per map call: every batch is still whole items."""

import numpy as np
import reverb
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from reverie.agents.dqn import dataset as dqn_dataset
from reverie.agents.dqn import transitions

LANES, K_ROWS, ITEMS = 4, 2, 40


OBSERVATION = array_spec.ArraySpec((3,), np.float32)
ACTION = array_spec.BoundedArraySpec((), np.int64, 0, ITEMS)


def _server():
  signature = transitions.item_signature(OBSERVATION, ACTION, LANES, K_ROWS)
  table = reverb.Table("t", sampler=reverb.selectors.Uniform(), remover=reverb.selectors.Fifo(),
                       max_size=ITEMS, rate_limiter=reverb.rate_limiters.MinSize(1),
                       signature=signature)
  server = reverb.Server([table])
  with reverb.Client(f"localhost:{server.port}").trajectory_writer(num_keep_alive_refs=1) as w:
    for item in range(ITEMS):
      # Every transition of item i carries i in its observation and action.
      w.append(transitions.pack({"observation": np.full((K_ROWS, LANES, 3), item, np.float32),
                "action": np.full((K_ROWS, LANES), item, np.int64),
                "reward": np.ones((K_ROWS, LANES), np.float32),
                "discount": np.full((K_ROWS, LANES), 0.5, np.float32),
                "next_observation": np.full((K_ROWS, LANES, 3), item + 0.5, np.float32),
                "valid": np.tile([True, True, True, False], (K_ROWS, 1))}))
      w.create_item("t", 1.0, {k: w.history[k][-1] for k in transitions.ITEM_COLUMNS})
    w.flush()
  return server


def test_batches_of_whole_items_keep_each_transition_together():
  server = _server()
  batch_size = 4 * K_ROWS * LANES  # four whole items a batch
  try:
    dataset = dqn_dataset.make_dataset(f"localhost:{server.port}", "t", ACTION, batch_size, 1000)
    batches = 3 * dqn_dataset._BATCHES_PER_MAP + 1  # pylint: disable=protected-access
    for experience, extra in dataset.take(batches):
      assert extra == ()
      assert experience.time_step.observation.shape == (batch_size, 3)
      obs, action = experience.time_step.observation.numpy(), experience.action_step.action.numpy()
      np.testing.assert_array_equal(obs[:, 0], action)
      np.testing.assert_array_equal(  # its own next observation
          experience.next_time_step.observation.numpy()[:, 0], action + 0.5)
      # Whole items: each item id fills a multiple of K x N rows of the batch.
      _, counts = np.unique(action, return_counts=True)
      assert all(c % (K_ROWS * LANES) == 0 for c in counts)
      valid = experience.time_step.step_type.numpy() == ts.StepType.MID
      assert valid.sum() == batch_size * 3 // 4
      np.testing.assert_allclose(experience.next_time_step.discount.numpy(), 0.5)
  finally:
    server.stop()


def test_items_split_into_batches_of_consecutive_rows_of_one_item():
  server = _server()
  batch_size = K_ROWS * LANES // 2  # two batches an item
  try:
    dataset = dqn_dataset.make_dataset(f"localhost:{server.port}", "t", ACTION, batch_size, 1000)
    per_map = dqn_dataset._BATCHES_PER_MAP  # pylint: disable=protected-access
    batches = [b for b, _ in dataset.take(2 * per_map + 1)]
    for experience in batches:
      assert experience.time_step.observation.shape == (batch_size, 3)
      action = experience.action_step.action.numpy()
      assert len(set(action)) == 1  # one item's rows
      next_observation = experience.next_time_step.observation.numpy()
      np.testing.assert_array_equal(next_observation[:, 0], action + 0.5)
      valid = experience.time_step.step_type.numpy() == ts.StepType.MID
      assert valid.tolist() == [True, True, True, False]  # one row of the item: its four lanes
    # Both halves of an item: the first batch of a pair holds lanes 0-3 of row 0, the second row 1.
    for first, second in zip(batches[0::2], batches[1::2]):
      assert first.action_step.action.numpy()[0] == second.action_step.action.numpy()[0]
  finally:
    server.stop()
