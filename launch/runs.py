"""`reverie runs [ROOT]`: a table of the run directories under ROOT (default runs/)."""

import pathlib
from typing import List

from reverie.launch import contract
from reverie.launch import tables
from reverie.launch.errors import ReverieError
from reverie.launch.progress import format_duration
from reverie.launch.run_records import RunRecord, read_run

HEADERS = ("run", "status", "agent", "env", "env steps", "best eval", "wall time",
           "config", "git commit")


def list_runs(root: pathlib.Path) -> List[RunRecord]:
  """Every run directory directly under `root` (one holding config.yaml), by name.

  Raises:
    ReverieError: `root` is not a directory.
  """
  if not root.is_dir():
    raise ReverieError(f"{root}: no such directory; give the folder that holds run directories "
                       "(reverie train writes them to runs/ by default)")
  return [read_run(path) for path in sorted(root.iterdir())
          if path.is_dir() and contract.RunDir(path).is_run()]


def table(records: List[RunRecord]) -> str:
  """The printed table: one line per run (config hash cut to 12 hex digits)."""
  if not records:
    return "no runs (no folder with a config.yaml)"
  rows = [[r.name, r.status, r.config.get("agent", {}).get("kind"), r.config.get("env", {}).get("id"),
           r.env_steps, r.best_eval,
           None if r.wall_seconds is None else format_duration(r.wall_seconds),
           r.config_hash[:12], r.git_commit] for r in records]
  return tables.format_table(HEADERS, rows)
