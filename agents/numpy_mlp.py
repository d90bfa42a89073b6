"""A Keras MLP's forward pass in numpy, for actors and evaluators on small batches.

Calling a small TF function once per vector step costs about 0.5-0.9 ms here,
almost all of it dispatch; the same Flatten/Dense stack in numpy costs about
0.07 ms (benchmarks/policy_call.py). On a 2-core machine that CPU goes to the
learner. Only stacks of Flatten and Dense layers with the activations below
qualify; anything else (convolutions, preprocessing layers) keeps the TF path.

The first NumpyMlp limits this process's BLAS to one thread: these matmuls
are too small to split, and OpenBLAS's second thread spins against the
learner's TF threads. On this 2-core machine with the other core busy, a
[20, 128] x [128, 128] matmul took 428 us with two BLAS threads and 23 us
with one.
"""

import functools
from typing import List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import threadpoolctl

_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
}


class NumpyMlp:
  """Flatten and Dense layers evaluated in numpy; `refresh()` after the weights change."""

  def __init__(self, layers: Sequence[tf.keras.layers.Dense]):
    one_blas_thread()
    self._layers = list(layers)
    self._activations = [_ACTIVATIONS[layer.activation.__name__] for layer in self._layers]
    self._weights: List[np.ndarray] = []
    self.refresh()

  @classmethod
  def of_layers(cls, layers: Sequence[tf.keras.layers.Layer]) -> Optional["NumpyMlp"]:
    """The numpy MLP of `layers`, or None when one of them is not Flatten or Dense."""
    dense = []
    for layer in layers:
      if isinstance(layer, tf.keras.layers.Flatten):
        continue  # inputs are flattened to [batch, features] once, up front
      if (type(layer) is not tf.keras.layers.Dense  # pylint: disable=unidiomatic-typecheck
          or getattr(layer.activation, "__name__", None) not in _ACTIVATIONS):
        return None
      dense.append(layer)
    return cls(dense) if dense else None

  def refresh(self, values: Optional[Mapping] = None) -> None:
    """Copies the layers' current weights (after an assign or a pull from Reverb).

    Args:
      values: Pulled weights as {variable.ref(): numpy array}, taken instead of
        the layers' variables (no TF assign and read back on an actor's loop).
    """
    read = (lambda v: values[v.ref()]) if values is not None else (lambda v: v.numpy())
    self._weights = [(read(layer.kernel), read(layer.bias) if layer.use_bias else None)
                     for layer in self._layers]

  def __call__(self, inputs: np.ndarray) -> np.ndarray:
    x = np.asarray(inputs, np.float32).reshape(len(inputs), -1)
    for (kernel, bias), activation in zip(self._weights, self._activations):
      x = x @ kernel
      if bias is not None:
        x += bias
      x = activation(x)
    return x


@functools.cache
def one_blas_thread() -> None:
  """numpy's BLAS on one thread, for the whole process (small matmuls gain nothing from more).

  threadpoolctl finds the BLAS libraries by resolving the path of every loaded
  library (about 1,000 lstat calls once TensorFlow is loaded). Launchers call
  this before the role threads start: inside an actor thread, each of those
  calls waited for the learner's tracing to hand back the GIL, 0.25 s in all.
  """
  threadpoolctl.threadpool_limits(limits=1, user_api="blas")


def encoding_network_layers(encoder) -> List[tf.keras.layers.Layer]:
  """A TF-Agents EncodingNetwork's layers in call order, or [] when it preprocesses its inputs."""
  # pylint: disable=protected-access
  if encoder._flat_preprocessing_layers is not None or encoder._preprocessing_combiner is not None:
    return []
  return list(encoder._postprocessing_layers)
