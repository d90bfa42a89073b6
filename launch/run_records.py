"""What a run directory recorded, read back for `reverie runs` and `reverie compare`.

A finished run's status.json has its evals, env steps and wall time; a run
that is still going or was killed has none, so those come from its
TensorBoard event files (read with tensorboard's own loader, without
TensorFlow's runtime) and its pid files.
"""

import dataclasses
import datetime
import glob
import json
import os
import pathlib
from typing import List, Optional

import yaml

from reverie.launch import contract
from reverie.launch import lineage as lineage_lib

EVAL_TAG = "eval/avg_return"
ACTOR_RETURN_TAG = "actor/episode_return"


@dataclasses.dataclass
class Point:
  """One scalar: at `env_steps`, `wall_seconds` after the run started, `value`."""

  env_steps: int
  wall_seconds: float
  value: float


@dataclasses.dataclass
class RunRecord:
  """One run directory's state and curves.

  Attributes:
    run_dir: Its paths.
    status: finished / failed / interrupted / terminated (status.json),
      running (a live pid, no newer status.json) or killed (neither).
    config: config.yaml as a dict.
    lineage: lineage.json, or None for runs made before it existed.
    evals: eval/avg_return points, oldest first.
    actor_returns: actor/episode_return points of every actor, by env steps.
    env_steps: The newest env step count (status.json, else the actors' events).
    wall_seconds: How long it ran (status.json, else up to its newest event).
  """

  run_dir: contract.RunDir
  status: str
  config: dict
  lineage: Optional[dict]
  evals: List[Point]
  actor_returns: List[Point]
  env_steps: Optional[int]
  wall_seconds: Optional[float]

  @property
  def name(self) -> str:
    return self.run_dir.root.name

  @property
  def best_eval(self) -> Optional[float]:
    return max((p.value for p in self.evals), default=None)

  @property
  def final_eval(self) -> Optional[float]:
    return self.evals[-1].value if self.evals else None

  @property
  def config_hash(self) -> str:
    if self.lineage and self.lineage.get("config_sha256"):
      return self.lineage["config_sha256"]
    return lineage_lib.config_hash(self.run_dir.config.read_text())

  @property
  def git_commit(self) -> Optional[str]:
    """The commit's first 10 hex digits, '+dirty' when the tree had changes; None if unknown."""
    git = (self.lineage or {}).get("git")
    if not git:
      return None
    return git["commit"][:10] + ("+dirty" if git.get("dirty") else "")


def read_run(root: pathlib.Path) -> RunRecord:
  """Reads one run directory (it must hold config.yaml)."""
  run_dir = contract.RunDir(root)
  status = _read_json(run_dir.status)
  lineage = lineage_lib.read_lineage(run_dir)
  start = _start_time(status, lineage)
  actor_returns = []
  index = 0
  while run_dir.tensorboard("actor", index).is_dir():
    actor_returns += scalar_events(run_dir.tensorboard("actor", index), ACTOR_RETURN_TAG)
    index += 1
  if status and status.get("evals") is not None:
    evals = [(e["env_steps"], e["time"], e["avg_return"]) for e in status["evals"]]
  else:
    evals = scalar_events(run_dir.tensorboard("evaluator"), EVAL_TAG)
  events = sorted(actor_returns + evals)
  if start is None:
    start = min((wall for _, wall, _ in events), default=None)
  env_steps = status["env_steps"] if status else max((s for s, _, _ in events), default=None)
  if status:
    wall_seconds = status.get("wall_seconds")
  else:
    last = max((wall for _, wall, _ in events), default=None)
    wall_seconds = last - start if last is not None and start is not None else None
  def points(raw):
    return [Point(int(s), wall - (start or wall), float(v)) for s, wall, v in sorted(raw)]
  return RunRecord(run_dir, _status(run_dir, status), yaml.safe_load(run_dir.config.read_text()),
                   lineage, points(evals), points(actor_returns), env_steps, wall_seconds)


def scalar_events(directory: pathlib.Path, tag: str) -> List[tuple]:
  """[(step, wall time, value)] of `tag` in every event file of `directory`."""
  from tensorboard.backend.event_processing import event_file_loader  # pylint: disable=g-import-not-at-top
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  found = []
  for path in sorted(glob.glob(str(directory / "events.out.tfevents.*"))):
    for event in event_file_loader.EventFileLoader(path).Load():
      for value in event.summary.value:
        if value.tag == tag:
          found.append((event.step, event.wall_time,
                        float(tensor_util.make_ndarray(value.tensor).item())))
  return found


def pid_alive(pid: int) -> bool:
  """The process exists and, where /proc tells, is a reverie (not a reused pid)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass
  try:
    command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
  except OSError:
    return True
  return b"reverie" in command


def _status(run_dir: contract.RunDir, status: Optional[dict]) -> str:
  """running when a pid file newer than status.json names a live process (a resume)."""
  written = run_dir.status.stat().st_mtime if status else None
  for pid_file in run_dir.pid("learner").parent.glob("*"):
    try:
      pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
      continue
    if pid_alive(pid) and (written is None or pid_file.stat().st_mtime > written):
      return "running"
  return status.get("status", "unknown") if status else "killed"


def _start_time(status: Optional[dict], lineage: Optional[dict]) -> Optional[float]:
  if lineage and lineage.get("started_at_unix"):
    return lineage["started_at_unix"]
  if status and status.get("finished_at") and status.get("wall_seconds") is not None:
    finished = datetime.datetime.fromisoformat(status["finished_at"]).timestamp()
    return finished - status["wall_seconds"]
  return None


def _read_json(path: pathlib.Path) -> Optional[dict]:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None

