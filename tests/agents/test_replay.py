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
