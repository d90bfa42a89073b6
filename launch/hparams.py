"""TensorBoard's HParams tab: each run's flattened config and its final scores.

At start a run writes its hyperparameters (every config key, flattened to
`section.key`) into RUN_DIR/tb/hparams; at the end it writes its final and
best eval return, env steps and wall seconds there, and the session's end
status. `tensorboard --logdir runs/` then shows every run as one row of the
HParams tab. No experiment config is written: TensorBoard infers the columns
from the runs, so runs with different configs sit side by side.
"""

import time
from typing import Optional

import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

# Metrics of the HParams tab (scalars in RUN_DIR/tb/hparams); x = env steps.
FINAL_EVAL_TAG = "hparams/final_eval_return"
BEST_EVAL_TAG = "hparams/best_eval_return"
ENV_STEPS_TAG = "hparams/env_steps"
WALL_SECONDS_TAG = "hparams/wall_seconds"

_END_STATUS = {"finished": api_pb2.STATUS_SUCCESS, "failed": api_pb2.STATUS_FAILURE,
               "interrupted": api_pb2.STATUS_RUNNING, "terminated": api_pb2.STATUS_RUNNING}


def flatten(config: dict, prefix: str = "") -> dict:
  """{"section.key": value} with values TensorBoard accepts (bool, int, float, str)."""
  flat = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(flatten(value, f"{name}."))
    elif isinstance(value, (bool, int, float, str)):
      flat[name] = value
    else:  # lists and None: shown as YAML would write them
      flat[name] = "null" if value is None else str(value)
  return flat


def write_start(logdir: str, config: dict, trial_id: str) -> None:
  """The run's hyperparameters: the HParams tab's row for this run."""
  _write(logdir, 0, hp.hparams_pb(flatten(config), trial_id=trial_id,
                                  start_time_secs=time.time()))


def write_end(logdir: str, status: str, env_steps: int, wall_seconds: float,
              final_eval: Optional[dict], best_eval: Optional[dict]) -> None:
  """The run's final scores and end status (interrupted and terminated runs stay 'running')."""
  scalars = {ENV_STEPS_TAG: env_steps, WALL_SECONDS_TAG: wall_seconds}
  if final_eval is not None:
    scalars[FINAL_EVAL_TAG] = final_eval["avg_return"]
  if best_eval is not None:
    scalars[BEST_EVAL_TAG] = best_eval["avg_return"]
  summary = summary_pb2.Summary(value=[
      summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(np.float32(value)),
                                metadata=scalar_metadata.create_summary_metadata("", ""))
      for tag, value in scalars.items()])
  end = plugin_data_pb2.SessionEndInfo(status=_END_STATUS.get(status, api_pb2.STATUS_FAILURE),
                                       end_time_secs=time.time())
  summary.value.add(tag=hparams_metadata.SESSION_END_INFO_TAG,
                    metadata=hparams_metadata.create_summary_metadata(
                        plugin_data_pb2.HParamsPluginData(session_end_info=end)),
                    tensor=tensor_util.make_tensor_proto(np.zeros([0], np.float32)))
  _write(logdir, env_steps, summary)


def _write(logdir: str, step: int, summary: summary_pb2.Summary) -> None:
  """One event file per call, written by TensorBoard's own writer.

  Not tf.summary: its writer starts TensorFlow's runtime, and the launcher
  configures the runtime's threads after this first write.
  """
  writer = EventFileWriter(logdir)
  writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
  writer.close()
