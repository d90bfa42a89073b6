"""Exports policies: SavedModel through TF-Agents' PolicySaver, and TFLite for the edge.

Every export is written beside its destination and renamed into place, so a
reader never sees half a policy.
"""

import os
import pathlib
import shutil

import tensorflow as tf
from tf_agents.policies import policy_saver
from tf_agents.trajectories import time_step as ts


def save_policy(policy, directory: pathlib.Path, train_step: tf.Variable) -> None:
  """A SavedModel of `policy`; load with tf.saved_model.load (import tensorflow_probability first)."""
  saver = policy_saver.PolicySaver(policy, batch_size=None, train_step=train_step)
  _replace(directory, lambda tmp: saver.save(str(tmp)))


def copy_policy(source: pathlib.Path, directory: pathlib.Path) -> None:
  """Puts a copy of an exported policy at `directory`, replacing what was there."""
  _replace(directory, lambda tmp: shutil.copytree(source, tmp))


def greedy_function(policy, observation_spec) -> tf.types.experimental.ConcreteFunction:
  """observations [B, ...] -> actions [B]: the policy with one input and one output."""
  # No autograph, as in PolicySaver: TF-Agents policies are plain TF, and converting
  # them took ~2 s of every final export (py-spy).
  @tf.function(input_signature=[tf.TensorSpec([None, *observation_spec.shape],
                                              observation_spec.dtype, "observation")],
               autograph=False)
  def act(observation):
    batch = tf.shape(observation)[0]
    time_step = ts.TimeStep(step_type=tf.fill([batch], ts.StepType.MID),
                            reward=tf.zeros([batch]), discount=tf.ones([batch]),
                            observation=observation)
    return {"action": policy.action(time_step).action}
  return act.get_concrete_function()


def save_tflite(policy, observation_spec, path: pathlib.Path) -> None:
  """A .tflite file: one input (a batch of observations), one output (a batch of actions)."""
  function = greedy_function(policy, observation_spec)
  converter = tf.lite.TFLiteConverter.from_concrete_functions([function], policy)
  model = converter.convert()
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  tmp.write_bytes(model)
  os.replace(tmp, path)


def _replace(directory: pathlib.Path, write) -> None:
  directory.parent.mkdir(parents=True, exist_ok=True)
  tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
  old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  write(tmp)
  if directory.exists():
    os.replace(directory, old)
  os.replace(tmp, directory)
  shutil.rmtree(old, ignore_errors=True)
