"""The DQN learner's input: batches of Transitions sampled from Reverb items.

Items are agents/dqn/transitions.py's (vector observations: raw rows, whose
n-step returns are summed here) or agents/dqn/frames.py's (pixels);
prioritized replay adds each transition's item key and importance weight.
"""

from typing import Dict, Optional

import tensorflow as tf

from reverie.agents.dqn.transitions import to_transition, transitions_per_item, unpack

# The learner's feed when whole items fill a batch (benchmarks/learner_throughput.py,
# issue 9): batches converted by one map call, batches' worth of items the Reverb
# sampler keeps requested, batches ready before the train step asks.
_BATCHES_PER_MAP = 8
_IN_FLIGHT_BATCHES = 2 * _BATCHES_PER_MAP
_PREFETCH_BATCHES = 8


def importance_weights(probability: tf.Tensor, table_size: tf.Tensor, exponent: float) -> tf.Tensor:
  """Prioritized replay's importance weights (N * P)^-beta, scaled so the batch's largest is 1."""
  weights = tf.pow(tf.cast(table_size, tf.float32) * tf.cast(probability, tf.float32), -exponent)
  return weights / tf.reduce_max(weights)


def item_priorities(keys: tf.Tensor, td_errors: tf.Tensor):
  """(unique item keys, priority of each): the largest |TD error| of the item's transitions in
  the batch."""
  unique, index = tf.unique(tf.bitcast(keys, tf.int64))  # tf.unique takes no uint64
  priorities = tf.math.unsorted_segment_max(tf.abs(tf.reshape(td_errors, [-1])), index,
                                            tf.size(unique))
  return tf.bitcast(unique, tf.uint64), tf.cast(priorities, tf.float64) + 1e-6


# The dataset's functions are plain TF: traced without AutoGraph, which took a
# tenth of a second of the learner's start converting them.
no_autograph = tf.autograph.experimental.do_not_convert


def make_dataset(server_address: str, table: str, action_spec, batch_size: int,
                 rate_limiter_timeout_ms: int, n_step: int, gamma: float,
                 importance_sampling_exponent: Optional[float] = None) -> tf.data.Dataset:
  """Batches of `batch_size` Transitions sampled from a Reverb table of items.

  Items of vector observations are raw rows, summed into `n_step` returns with
  `gamma` here (`transitions.unpack`; their actions cast back to `action_spec`'s
  dtype); items of pixels are agents/dqn/frames.py's, summed by the actors.

  Items are regrouped into batches of transitions without a per-transition
  tf.data step: when whole items fill a batch, or a batch is a whole part of
  an item, one map reshapes and converts several batches at once (each
  tf.data stage costs CPU that a small learner on a small machine shares
  with its actors: one sampler and one map gave 3.2k batches/s here, two
  interleaved samplers and three maps 2.0k).
  """
  import reverb  # pylint: disable=g-import-not-at-top
  signature = reverb.TrajectoryDataset.from_table_signature(
      server_address, table, max_in_flight_samples_per_worker=1,
      get_signature_timeout_secs=30).element_spec.data
  on_frames = "frame" in signature
  per_item = transitions_per_item(signature, n_step)
  items_per_batch = -(-batch_size // per_item)
  per_item_path = on_frames or importance_sampling_exponent is not None
  columns = lambda data: unpack(data, action_spec, n_step, gamma)  # an item's transitions
  # Whole items make whole batches: several items a batch, or several batches an item.
  whole_items = not per_item_path and (batch_size % per_item == 0 or per_item % batch_size == 0)
  in_flight_batches = _IN_FLIGHT_BATCHES if whole_items else 2
  dataset = reverb.TrajectoryDataset(
      server_address, table, dtypes=tf.nest.map_structure(lambda s: s.dtype, signature),
      shapes=tf.nest.map_structure(lambda s: s.shape, signature),
      max_in_flight_samples_per_worker=in_flight_batches * items_per_batch,
      rate_limiter_timeout_ms=rate_limiter_timeout_ms)
  if per_item_path:
    return _per_item_dataset(dataset, columns, per_item, batch_size, n_step,
                             importance_sampling_exponent, on_frames)
  if whole_items:
    return _whole_items_dataset(dataset, columns, per_item, batch_size)
  dataset = dataset.map(no_autograph(lambda sample: _flat_item(columns(sample.data), per_item)))
  dataset = dataset.rebatch(batch_size, drop_remainder=True)
  return dataset.map(no_autograph(lambda item: (to_transition(item), ()))).prefetch(4)


def _flat_item(columns: Dict[str, tf.Tensor], per_item: int) -> Dict[str, tf.Tensor]:
  """One item's transition columns, [K, N, ...] -> [K*N, ...]."""
  return tf.nest.map_structure(lambda x: tf.reshape(x, [per_item, *x.shape[2:]]), columns)


def _whole_items_dataset(dataset: tf.data.Dataset, columns, per_item: int,
                         batch_size: int) -> tf.data.Dataset:
  """Whole items make whole batches; one map converts about `_BATCHES_PER_MAP` of them.

  Items summed into [items, K, N, ...] transitions (`columns`), then
  [batches, batch, ...] when items fill batches (batch a multiple of K * N)
  or batches split items (K * N a multiple of batch; a batch then holds
  consecutive rows of one item, as `rebatch` would cut them); the map's
  fixed cost is paid once for all of them.
  """
  items = max(1, _BATCHES_PER_MAP * batch_size // per_item)
  batches = items * per_item // batch_size
  flatten = lambda x: tf.reshape(x, [batches * batch_size, *x.shape[3:]])
  split = lambda x: tf.reshape(x, [batches, batch_size, *x.shape[1:]])
  def to_batches(sample):
    experience = to_transition(tf.nest.map_structure(flatten, columns(sample.data)))
    return tf.nest.map_structure(split, experience), ()
  dataset = dataset.batch(items, drop_remainder=True).map(no_autograph(to_batches))
  return dataset.unbatch().prefetch(_PREFETCH_BATCHES)


def _per_item_dataset(dataset: tf.data.Dataset, columns, per_item: int, batch_size: int,
                      n_step: int, importance_sampling_exponent: Optional[float],
                      on_frames: bool) -> tf.data.Dataset:
  """Items to transitions one at a time: pixels (frames stacked here) and prioritized replay.

  Prioritized: every transition carries its item's key and importance
  weight, and batches are ({'experience', 'weights'}, {'key'}) for the
  agent's train(**kwargs) and the learner's priority updates.
  """
  from reverie.agents.dqn import frames  # pylint: disable=g-import-not-at-top
  def to_transitions(sample):
    if on_frames:
      item = frames.stack_item(sample.data, n_step)
    else:
      item = _flat_item(columns(sample.data), per_item)
    if importance_sampling_exponent is not None:
      item["key"] = tf.fill([per_item], sample.info.key)
      item["probability"] = tf.fill([per_item], sample.info.probability)
      item["table_size"] = tf.fill([per_item], sample.info.table_size)
    return item
  dataset = dataset.map(no_autograph(to_transitions)).rebatch(batch_size, drop_remainder=True)
  if importance_sampling_exponent is None:
    return dataset.map(no_autograph(lambda item: (to_transition(item), ()))).prefetch(4)
  def prioritized(item):
    weights = importance_weights(item.pop("probability"), item.pop("table_size"),
                                 importance_sampling_exponent)
    key = item.pop("key")
    return {"experience": to_transition(item), "weights": weights}, {"key": key}
  return dataset.map(no_autograph(prioritized)).prefetch(4)
