"""Exports policies: SavedModel through TF-Agents' PolicySaver, and TFLite for the edge.

Every export is written beside its destination and renamed into place, so a
reader never sees half a policy. Each SavedModel holds a `reverie_policy.json`
saying which train step and checkpoint it came from.
"""

import datetime
import json
import os
import pathlib
import re
import shutil
from typing import Optional

import tensorflow as tf
from tf_agents.policies import policy_saver
from tf_agents.trajectories import time_step as ts

POLICY_INFO = "reverie_policy.json"


def save_policy(policy, directory: pathlib.Path, train_step: tf.Variable,
                checkpoint_dir: Optional[pathlib.Path] = None) -> None:
  """A SavedModel of `policy`; load with tf.saved_model.load (import tensorflow_probability first).

  Args:
    policy: A TF-Agents policy.
    directory: Where the SavedModel goes (replaced whole).
    train_step: The learner's train step, saved with the policy.
    checkpoint_dir: The learner's checkpoints; when None, the `checkpoints`
      folder of the nearest enclosing folder that has one (the run directory).
  """
  saver = policy_saver.PolicySaver(policy, batch_size=None, train_step=train_step)
  info = policy_info(policy, int(train_step.numpy()),
                     checkpoint_dir or _enclosing_checkpoints(directory))
  def write(tmp: pathlib.Path) -> None:
    saver.save(str(tmp))
    (tmp / POLICY_INFO).write_text(json.dumps(info, indent=2) + "\n")
  _replace(directory, write)


def policy_info(policy, train_step: int, checkpoint_dir: Optional[pathlib.Path]) -> dict:
  """What reverie_policy.json holds: train step, newest checkpoint then, policy class, time.

  The checkpoint (relative to the run directory) is the newest one when the
  policy was exported; the learner numbers checkpoints by train step, so
  `checkpoint_train_step` equal to `train_step` means the checkpoint holds
  exactly these weights.
  """
  checkpoint = tf.train.latest_checkpoint(str(checkpoint_dir)) if checkpoint_dir else None
  number = re.search(r"-(\d+)$", checkpoint) if checkpoint else None
  if checkpoint:  # relative to the run directory, which may move
    checkpoint = os.path.relpath(checkpoint, pathlib.Path(checkpoint_dir).parent)
  return {"train_step": train_step, "checkpoint": checkpoint,
          "checkpoint_train_step": int(number.group(1)) if number else None,
          "policy_class": type(policy).__name__,
          "exported_at": datetime.datetime.now().isoformat()}


def read_policy_info(directory: pathlib.Path) -> Optional[dict]:
  """reverie_policy.json of an exported SavedModel, or None for an export without one."""
  path = pathlib.Path(directory) / POLICY_INFO
  return json.loads(path.read_text()) if path.is_file() else None


def _enclosing_checkpoints(directory: pathlib.Path) -> Optional[pathlib.Path]:
  for parent in list(pathlib.Path(directory).resolve().parents)[:3]:
    if (parent / "checkpoints").is_dir():
      return parent / "checkpoints"
  return None


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
