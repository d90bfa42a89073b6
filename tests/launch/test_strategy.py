"""launch/strategy.py: every strategy kind from config, on the devices this machine has.

There is no GPU and no TPU here: mirrored runs on the two logical CPUs of
tests/conftest.py, and the TPU test fakes TensorFlow's TPU entry points (a
TPU cannot exist here) to check what Reverie asks of them.
"""

import json
import unittest.mock

import pytest
import tensorflow as tf

from reverie.agents.dqn import dataset as dqn_dataset
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch import strategy as strategy_lib
from reverie.launch.config import load_config
from reverie.launch.errors import ReverieError
from reverie.launch.replay_server import start_replay_server


def _strategy_config(**sets):
  return load_config("dqn_cartpole", [f"strategy.{k}={v}" for k, v in sets.items()]).config.strategy


def test_mirrored_spreads_over_the_logical_cpus():
  strategy = strategy_lib.make_strategy(_strategy_config(kind="mirrored", devices=2))
  assert isinstance(strategy, tf.distribute.MirroredStrategy)
  assert strategy.num_replicas_in_sync == 2
  assert sorted(strategy.extended.worker_devices) == [
      "/job:localhost/replica:0/task:0/device:CPU:0", "/job:localhost/replica:0/task:0/device:CPU:1"]


def test_mirrored_asks_for_more_devices_than_exist():
  with pytest.raises(ReverieError, match="strategy.devices: 3 logical CPUs"):
    strategy_lib.make_strategy(_strategy_config(kind="mirrored", devices=3))
  with pytest.raises(ReverieError, match="'all' takes every GPU and this host has none"):
    strategy_lib.make_strategy(_strategy_config(kind="mirrored", devices="all"))


def test_one_device_without_gpus_is_the_cpu():
  strategy = strategy_lib.make_strategy(_strategy_config(kind="one_device", devices=0))
  assert strategy.extended.worker_devices == ("/job:localhost/replica:0/task:0/device:CPU:0",)


def test_multi_worker_needs_tf_config(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ReverieError, match="multi_worker needs TF_CONFIG"):
    strategy_lib.make_strategy(_strategy_config(kind="multi_worker"))
  monkeypatch.setenv("TF_CONFIG", json.dumps({"task": {"type": "worker", "index": 0}}))
  with pytest.raises(ReverieError, match="TF_CONFIG: not a cluster spec"):
    strategy_lib.make_strategy(_strategy_config(kind="multi_worker"))


def test_tpu_strategy_is_built_from_the_address():
  # A TPU cannot exist here: TensorFlow's TPU entry points are fakes that record their calls.
  with unittest.mock.patch.object(tf.distribute.cluster_resolver, "TPUClusterResolver") as resolver, \
       unittest.mock.patch.object(tf.config, "experimental_connect_to_cluster") as connect, \
       unittest.mock.patch.object(tf.tpu.experimental, "initialize_tpu_system") as initialize, \
       unittest.mock.patch.object(tf.distribute, "TPUStrategy") as tpu_strategy:
    strategy = strategy_lib.make_strategy(_strategy_config(kind="tpu", tpu_address="grpc://10.0.0.2:8470"))
  resolver.assert_called_once_with(tpu="grpc://10.0.0.2:8470")
  connect.assert_called_once_with(resolver.return_value)
  initialize.assert_called_once_with(resolver.return_value)
  tpu_strategy.assert_called_once_with(resolver.return_value)
  assert strategy is tpu_strategy.return_value


def test_tpu_without_address_is_refused_at_config_time():
  with pytest.raises(ReverieError, match="strategy.tpu_address"):
    load_config("dqn_cartpole", ["strategy.kind=tpu"])


def test_reverb_dataset_is_built_on_the_host_cpu_under_tpu(tmp_path):
  """Reverb's dataset op has a CPU kernel only (reverb#29, #68): under TPUStrategy the
  learner builds it on the host CPU, whatever device the strategy's input worker has."""
  config = load_config("dqn_cartpole", ["actor.envs_per_actor=4"]).config
  env = make_batched_env("CartPole-v1", 1)
  server = start_replay_server(config, contract.RunDir(tmp_path), None, env.observation_spec,
                               env.action_spec)
  env.close()
  tpu = unittest.mock.MagicMock(spec=tf.distribute.TPUStrategy)  # no TPU exists here
  build = lambda: dqn_dataset.make_dataset(f"localhost:{server.port}", contract.EXPERIENCE_TABLE,
                                           env.action_spec, 16, 100, config.agent.n_step_update,
                                           config.agent.gamma)
  try:
    # The strategy's input worker device here stands for a TPU host's; without
    # the host-CPU scope the dataset would land on it.
    with tf.device("/job:localhost/replica:0/task:0/device:CPU:1"):
      plain = build()
      on_host = strategy_lib.on_dataset_device(tpu, build)()
    assert plain._variant_tensor.device.endswith("CPU:1")
    assert on_host._variant_tensor.device == strategy_lib.HOST_CPU
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy_lib.on_dataset_device(mirrored, build) is build
  finally:
    server.stop()
