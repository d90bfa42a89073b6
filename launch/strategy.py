"""The one place that turns `strategy.kind` into a `tf.distribute.Strategy`."""

import tensorflow as tf

from reverie.launch.config_schema import StrategyConfig
from reverie.launch.errors import ReverieError


def make_strategy(config: StrategyConfig) -> tf.distribute.Strategy:
  """Builds the learner's strategy; call before any variable is created.

  default: TensorFlow's default strategy (one device, no replication).
  one_device: pins the learner to GPU `devices` when there is one, else the CPU.
  """
  if config.kind == "default":
    return tf.distribute.get_strategy()
  if config.kind == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      if config.devices >= len(gpus):
        raise ReverieError(f"strategy.devices: GPU {config.devices} asked for, this host has "
                           f"{len(gpus)}; give an index below {len(gpus)}")
      return tf.distribute.OneDeviceStrategy(gpus[config.devices].name)
    return tf.distribute.OneDeviceStrategy("/cpu:0")
  raise ReverieError(f"strategy.kind: {config.kind} is not available in this version of "
                     "Reverie yet; use default or one_device")
