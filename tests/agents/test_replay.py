"""agents/replay.py's helpers against a real Reverb server."""

import numpy as np
import portpicker
import pytest
import reverb
import tensorflow as tf

from reverie.agents import replay


def test_table_info_reads_what_server_info_reads_without_the_signatures():
  variables = {"w": tf.Variable(np.zeros((3, 2), np.float32))}
  server = reverb.Server([
      replay.variables_table("variables", variables),
      replay.uniform_table("experience", tf.TensorSpec([4], tf.float32), max_items=10,
                           min_items=1, samples_per_insert=2.0, error_buffer_items=10.0)])
  client = reverb.Client(f"localhost:{server.port}")
  try:
    for _ in range(3):
      client.insert([np.ones(4, np.float32)], {"experience": 1.0})
    client.insert([np.ones((3, 2), np.float32)], {"variables": 1.0})
    next(client.sample("experience", num_samples=1))
    for table in ("variables", "experience"):
      want = client.server_info()[table]
      got = replay.table_info(client, table, timeout_seconds=5)
      assert got.name == table and got.current_size == want.current_size
      assert got.rate_limiter_info == want.rate_limiter_info
    got = replay.table_info(client, "experience").rate_limiter_info
    assert (got.insert_stats.completed, got.sample_stats.completed) == (3, 1)
    with pytest.raises(KeyError, match="no table 'missing' on the replay server"):
      replay.table_info(client, "missing")
  finally:
    server.stop()


def test_table_info_of_an_unreachable_server_raises_reverbs_deadline_error():
  client = reverb.Client(f"localhost:{portpicker.pick_unused_port()}")
  with pytest.raises(reverb.errors.DeadlineExceededError, match="within 1 s"):
    replay.table_info(client, "variables", timeout_seconds=1)


@pytest.mark.parametrize("traced", [True, False])
def test_weight_pusher_pushes_the_current_values(traced):
  variables = {"policy": [tf.Variable(np.zeros((3, 2), np.float32)),
                          tf.Variable(np.ones(2, np.float32))],
               "step": tf.Variable(0, dtype=tf.int64)}
  server = reverb.Server([replay.variables_table("variables", variables)])
  address = f"localhost:{server.port}"
  try:
    push = replay.weight_pusher(address, "variables", variables, traced=traced)
    container = replay.variable_container(address, "variables")
    for step in (7, 8):
      variables["policy"][0].assign(np.full((3, 2), step, np.float32))
      variables["step"].assign(step)
      push()
      pulled = container.pull("variables")
      np.testing.assert_array_equal(pulled["policy"][0], np.full((3, 2), step, np.float32))
      np.testing.assert_array_equal(pulled["policy"][1], np.ones(2, np.float32))
      assert int(pulled["step"]) == step
    info = replay.table_info(reverb.Client(address), "variables")
    assert info.rate_limiter_info.insert_stats.completed == 2
  finally:
    server.stop()


def test_traced_weight_pusher_reads_mirrored_variables():
  # MirroredStrategy over the two logical CPUs tests/conftest.py makes (no GPU here).
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  with strategy.scope():
    weights = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2))
  variables = {"policy": [weights]}
  server = reverb.Server([replay.variables_table("variables", variables)])
  address = f"localhost:{server.port}"
  try:
    push = replay.weight_pusher(address, "variables", variables)
    container = replay.variable_container(address, "variables")
    for scale in (2.0, 3.0):
      weights.assign(np.arange(6, dtype=np.float32).reshape(3, 2) * scale)
      push()
      np.testing.assert_array_equal(container.pull("variables")["policy"][0],
                                    np.arange(6).reshape(3, 2) * scale)
  finally:
    server.stop()
