"""Reverb tables shared by every agent: experience tables and the variables table."""

from typing import Any

import reverb
import tensorflow as tf


def uniform_table(name: str, signature: Any, max_items: int, min_items: int,
                  samples_per_insert: float, error_buffer_items: float) -> reverb.Table:
  """An experience replay table: uniform sampling, FIFO removal, a sample/insert ratio.

  `SampleToInsertRatio` keeps learning and collection at the configured ratio
  whatever their speeds; `error_buffer_items` is how far either may run ahead.
  """
  limiter = reverb.rate_limiters.SampleToInsertRatio(
      samples_per_insert=samples_per_insert, min_size_to_sample=min_items,
      error_buffer=max(error_buffer_items, samples_per_insert + 1))
  return reverb.Table(name, sampler=reverb.selectors.Uniform(), remover=reverb.selectors.Fifo(),
                      max_size=max_items, rate_limiter=limiter, signature=signature)


def variables_table(name: str, variables: Any) -> reverb.Table:
  """Holds the newest policy weights (max_size 1), read by actors and evaluators."""
  signature = tf.nest.map_structure(lambda v: tf.TensorSpec(v.shape, v.dtype), variables)
  return reverb.Table(name, sampler=reverb.selectors.Uniform(), remover=reverb.selectors.Fifo(),
                      max_size=1, max_times_sampled=0,
                      rate_limiter=reverb.rate_limiters.MinSize(1), signature=signature)
