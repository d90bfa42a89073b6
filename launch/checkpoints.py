"""The learner's checkpoints in RUN_DIR/checkpoints: agent, train step and the run's counters.

A checkpoint holds the agent (networks, target network, optimizer), the
train step and the counters a resumed run goes on from: env steps, episodes
and the evaluation history. TensorFlow writes a checkpoint's files before it
names the checkpoint in the `checkpoint` file, so a process killed while
saving leaves the previous one the newest complete one.

`restore_newest` reads the newest checkpoint that reads back whole; one that
does not (truncated, garbled) is skipped with a note, never deleted, and the
next saves take another name so they cannot overwrite it.
"""

import json
import logging
import pathlib
import re
from typing import List, Optional, Tuple

import tensorflow as tf

from reverie.launch.errors import ReverieError
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.learner")
_UNREADABLE = (tf.errors.OpError, IndexError, ValueError, AssertionError)


class LearnerCheckpoints:
  """Saves and restores a learner's agent, train step and run counters."""

  def __init__(self, directory: pathlib.Path, agent, train_step: tf.Variable, max_to_keep: int):
    self.directory, self._max_to_keep = pathlib.Path(directory), max_to_keep
    self.train_step = train_step
    self.env_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.episodes = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.evals = tf.Variable("[]", dtype=tf.string, trainable=False)
    self.checkpoint = tf.train.Checkpoint(agent=agent, train_step=train_step,
                                          env_steps=self.env_steps, episodes=self.episodes,
                                          evals=self.evals)
    self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory),
                                              max_to_keep=max_to_keep)

  def save(self, state: Optional[RunState] = None) -> str:
    """Writes a checkpoint numbered by the train step, with the counters of `state`."""
    if state is not None:
      with state.lock:
        self.env_steps.assign(state.env_steps)
        self.episodes.assign(state.episodes)
        self.evals.assign(json.dumps(state.evals))
    return self.manager.save(checkpoint_number=self.train_step)

  def restore_newest(self) -> Optional[dict]:
    """Restores the newest readable checkpoint; None when the directory holds none.

    Returns its path, train step, counters and the unreadable ones skipped
    ([(path, why)]). Raises ReverieError when checkpoints exist and none reads.
    """
    skipped: List[Tuple[str, str]] = []
    for prefix in _newest_first(self.directory):
      try:
        self.checkpoint.read(prefix).assert_existing_objects_matched()
      except _UNREADABLE as e:
        why = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
        log.warning("checkpoint %s is unreadable (%s); trying the one before", prefix, why)
        skipped.append((prefix, why))
        continue
      if skipped:
        self._save_beside(skipped)
      return {"path": prefix, "train_step": int(self.train_step.numpy()),
              "env_steps": int(self.env_steps.numpy()), "episodes": int(self.episodes.numpy()),
              "evals": json.loads(self.evals.numpy().decode()), "skipped": skipped}
    if skipped:
      raise ReverieError(
          f"--resume: no readable checkpoint in {self.directory} ("
          + "; ".join(f"{pathlib.Path(p).name}: {why}" for p, why in skipped)
          + "); the files are left as they are, start a new run")
    return None

  def _save_beside(self, skipped: List[Tuple[str, str]]) -> None:
    """Saves from now on under a new name, and never rotates the skipped ones away."""
    step = int(self.train_step.numpy())
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, str(self.directory), max_to_keep=self._max_to_keep,
        checkpoint_name=f"ckpt-resumed-from-{step}")
    unreadable = {prefix for prefix, _ in skipped}
    # CheckpointManager deletes the oldest of the checkpoints it lists; an
    # unreadable one stays on disk for its owner to look at.
    listed = self.manager._maybe_delete  # pylint: disable=protected-access
    for path in unreadable & set(listed):
      del listed[path]


def has_checkpoints(directory: pathlib.Path) -> bool:
  return bool(_newest_first(pathlib.Path(directory)))


def _newest_first(directory: pathlib.Path) -> List[str]:
  """Checkpoint prefixes, highest train step first (then newest file first)."""
  if not directory.is_dir():
    return []
  def key(index: pathlib.Path):
    number = re.search(r"-(\d+)$", index.stem)
    return (int(number.group(1)) if number else -1, index.stat().st_mtime)
  return [str(index.with_suffix("")) for index in
          sorted(directory.glob("*.index"), key=key, reverse=True)]
