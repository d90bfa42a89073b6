"""The one place that turns `strategy.kind` into a `tf.distribute.Strategy`.

`configure_devices` runs before TensorFlow's runtime starts (it sets what
only start-up can: logical CPUs, GPU memory growth); `make_strategy` runs
afterwards, before any variable is created; `dataset_device` says where the
learner must build its Reverb datasets.
"""

import json
import logging
import os
from typing import Callable, Optional

import tensorflow as tf

from reverie.launch.config_schema import StrategyConfig
from reverie.launch.errors import ReverieError

log = logging.getLogger("reverie.learner")

# Reverb's dataset op has a CPU kernel only (deepmind/reverb#29, #68): under a
# TPU strategy the learner builds its datasets here and the strategy moves the
# batches to the TPU cores.
HOST_CPU = "/job:localhost/replica:0/task:0/device:CPU:0"


def replica_count(config: StrategyConfig, gpus: int) -> int:
  """How many devices `mirrored` spreads over, given the host's GPU count."""
  if config.devices == "all":
    if not gpus:
      raise ReverieError("strategy.devices: 'all' takes every GPU and this host has none; give a "
                         "count to split the CPU into that many logical devices")
    return gpus
  return int(config.devices)


def configure_devices(config: StrategyConfig) -> None:
  """Process-wide device settings; call before anything starts TensorFlow's runtime.

  GPUs grow their memory as needed (or stop at `strategy.gpu_memory_limit_mb`),
  so actors, evaluators and other processes on the host keep theirs. `mirrored`
  over N devices on a host without GPUs splits the CPU into N logical devices,
  so the multi-device path runs (slowly) anywhere.
  """
  gpus = tf.config.list_physical_devices("GPU")
  for gpu in gpus:
    if config.gpu_memory_limit_mb:
      tf.config.set_logical_device_configuration(
          gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=config.gpu_memory_limit_mb)])
    else:
      tf.config.experimental.set_memory_growth(gpu, True)
  if config.kind == "mirrored" and not gpus:
    count = replica_count(config, 0)
    if count > 1:
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])


def make_strategy(config: StrategyConfig) -> tf.distribute.Strategy:
  """Builds the learner's strategy; call before any variable is created.

  default: TensorFlow's default strategy (one device, no replication).
  one_device: pins the learner to GPU `devices` when there is one, else the CPU.
  mirrored: synchronous replicas on `devices` GPUs (or `all`), or on as many
    logical CPUs (see `configure_devices`) on a host without GPUs.
  multi_worker: MultiWorkerMirroredStrategy over the processes in TF_CONFIG.
  tpu: TPUStrategy on the TPU at `tpu_address`.
  """
  if config.kind == "default":
    return tf.distribute.get_strategy()
  if config.kind == "one_device":
    return tf.distribute.OneDeviceStrategy(_one_device(int(config.devices)))
  if config.kind == "mirrored":
    return tf.distribute.MirroredStrategy(_mirrored_devices(config))
  if config.kind == "multi_worker":
    return _multi_worker(config)
  if config.kind == "tpu":
    return _tpu(config.tpu_address)
  raise ReverieError(f"strategy.kind: unknown strategy {config.kind!r}")


def dataset_device(strategy: tf.distribute.Strategy) -> Optional[str]:
  """The device to build Reverb datasets on: the host CPU under TPUStrategy, else None (any)."""
  return HOST_CPU if isinstance(strategy, tf.distribute.TPUStrategy) else None


def on_dataset_device(strategy: tf.distribute.Strategy, dataset_fn: Callable) -> Callable:
  """`dataset_fn`, building its dataset on `dataset_device(strategy)` when there is one."""
  device = dataset_device(strategy)
  if device is None:
    return dataset_fn

  def build(*args, **kwargs):
    with tf.device(device):
      return dataset_fn(*args, **kwargs)
  return build


def worker_count(strategy: tf.distribute.Strategy) -> int:
  """Processes training together: the cluster's chief and workers under multi_worker, else one."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return 1
  cluster = strategy.cluster_resolver.cluster_spec().as_dict()
  return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def worker_index(strategy: tf.distribute.Strategy) -> int:
  """This process's place among `worker_count` processes; the chief (or worker 0) is 0."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return 0
  resolver = strategy.cluster_resolver
  has_chief = bool(resolver.cluster_spec().as_dict().get("chief"))
  if resolver.task_type == "chief":
    return 0
  return (resolver.task_id or 0) + (1 if has_chief else 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process keeps the learner's outputs (always, except non-chief workers)."""
  return worker_index(strategy) == 0


def _one_device(index: int) -> str:
  gpus = tf.config.list_logical_devices("GPU")
  if not gpus:
    return "/cpu:0"
  if index >= len(gpus):
    raise ReverieError(f"strategy.devices: GPU {index} asked for, this host has "
                       f"{len(gpus)}; give an index below {len(gpus)}")
  return gpus[index].name


def _mirrored_devices(config: StrategyConfig):
  gpus = tf.config.list_logical_devices("GPU")
  count = replica_count(config, len(gpus))
  if gpus:
    if count > len(gpus):
      raise ReverieError(f"strategy.devices: {count} GPUs asked for, this host has {len(gpus)}; "
                         f"give at most {len(gpus)} or 'all'")
    return [gpu.name for gpu in gpus[:count]]
  cpus = tf.config.list_logical_devices("CPU")
  if count > len(cpus):
    raise ReverieError(f"strategy.devices: {count} logical CPUs asked for after TensorFlow "
                       f"started with {len(cpus)}; Reverie splits the CPU at start-up only")
  return [cpu.name for cpu in cpus[:count]]


def _multi_worker(config: StrategyConfig) -> tf.distribute.Strategy:
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    raise ReverieError("strategy.kind: multi_worker needs TF_CONFIG in the environment of every "
                       "learner process (the local launcher sets it for strategy.workers "
                       "processes; docs/multi_gpu.md shows one for two hosts)")
  try:
    cluster = json.loads(raw)["cluster"]
  except (ValueError, KeyError) as e:
    raise ReverieError(f"TF_CONFIG: not a cluster spec ({e}); see docs/multi_gpu.md") from None
  log.info("multi_worker cluster: %s", cluster)
  options = tf.distribute.experimental.CommunicationOptions(
      timeout_seconds=config.collective_timeout_seconds)
  return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _tpu(address: Optional[str]) -> tf.distribute.Strategy:
  if not address:
    raise ReverieError("strategy.tpu_address: tpu needs the TPU's name or grpc:// address "
                       "('local' on a TPU VM)")
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)
