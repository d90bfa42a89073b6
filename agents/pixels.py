"""Convolutional torsos for pixel observations (Atari), shared by DQN and PPO.

Observations stay uint8 [frames, height, width] (as the environment stacks
them) through actors and replay; the network casts and scales them to
[0, 1] floats and moves the frames last, where Conv2D wants channels.
"""

from typing import Sequence

import tensorflow as tf

# Mnih et al. 2015 ("Nature DQN"): (filters, kernel size, stride) of each layer.
NATURE_CONV_LAYERS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))


def is_pixels(observation_spec) -> bool:
  """uint8 observations of rank 3: stacked frames."""
  return len(observation_spec.shape) == 3 and tf.as_dtype(observation_spec.dtype) == tf.uint8


class PixelsToFloat(tf.keras.layers.Layer):
  """uint8 [..., frames, H, W] -> float32 [..., H, W, frames] in [0, 1]."""

  def call(self, inputs):  # pylint: disable=arguments-differ
    rank = inputs.shape.rank
    outer = list(range(rank - 3))
    return tf.transpose(tf.cast(inputs, tf.float32) / 255.0, outer + [rank - 2, rank - 1, rank - 3])


class FlattenFeatures(tf.keras.layers.Layer):
  """[..., H, W, C] -> [..., H * W * C]: Flatten that keeps every outer (batch, time) axis."""

  def call(self, inputs):  # pylint: disable=arguments-differ
    features = inputs.shape[-3] * inputs.shape[-2] * inputs.shape[-1]
    return tf.reshape(inputs, tf.concat([tf.shape(inputs)[:-3], [features]], axis=0))


def conv_layers(conv_layer_params: Sequence[Sequence[int]], seed: int = 0):
  """Keras layers: pixels to float, the conv stack (ReLU) and a flatten."""
  layers = [PixelsToFloat()]
  for filters, kernel, stride in conv_layer_params:
    layers.append(tf.keras.layers.Conv2D(
        filters, kernel, stride, activation=tf.nn.relu,
        kernel_initializer=tf.keras.initializers.Orthogonal(gain=2 ** 0.5, seed=seed)))
  layers.append(FlattenFeatures())
  return layers
