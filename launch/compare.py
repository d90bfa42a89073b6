"""`reverie compare RUN_DIR...`: one figure and one table to put runs side by side.

The figure (compare.png) has eval return and actor episode return against env
steps and against wall time for every run; the table (printed, and
compare.csv) has best and final eval, env steps, wall time and env steps/s.
"""

import pathlib
from typing import List, Sequence, Tuple

from reverie.launch import contract
from reverie.launch import plots
from reverie.launch import tables
from reverie.launch.errors import ReverieError
from reverie.launch.progress import format_duration
from reverie.launch.run_records import RunRecord, read_run

COLUMNS = ("run", "status", "best_eval", "final_eval", "env_steps", "wall_seconds",
           "env_steps_per_second")


def compare_runs(paths: Sequence[str], output: pathlib.Path) -> Tuple[List[dict], pathlib.Path]:
  """Reads every run, writes OUTPUT/compare.png and compare.csv; returns the rows and the PNG.

  Raises:
    ReverieError: a path is not a run directory.
  """
  for path in paths:
    if not contract.RunDir(path).is_run():
      raise ReverieError(f"{path}: not a run directory (no config.yaml); give directories "
                         "that `reverie train` wrote")
  records = [read_run(pathlib.Path(path)) for path in paths]
  names = _names(records, paths)
  curves = {name: {kind: ([p.env_steps for p in points], [p.wall_seconds for p in points],
                          [p.value for p in points])
                   for kind, points in (("eval", r.evals), ("actor", r.actor_returns))}
            for name, r in zip(names, records)}
  figure = output / "compare.png"
  plots.plot_runs(curves, figure)
  rows = [_row(name, record) for name, record in zip(names, records)]
  tables.write_csv(output / "compare.csv", COLUMNS, [[row[c] for c in COLUMNS] for row in rows])
  return rows, figure


def table(rows: List[dict]) -> str:
  """The printed table: wall time as 1m23s."""
  shown = [[r["run"], r["status"], r["best_eval"], r["final_eval"], r["env_steps"],
            None if r["wall_seconds"] is None else format_duration(r["wall_seconds"]),
            r["env_steps_per_second"]] for r in rows]
  return tables.format_table(["run", "status", "best eval", "final eval", "env steps",
                              "wall time", "env steps/s"], shown)


def _row(name: str, record: RunRecord) -> dict:
  rate = None
  if record.env_steps and record.wall_seconds:
    rate = round(record.env_steps / record.wall_seconds, 1)
  return {"run": name, "status": record.status, "best_eval": record.best_eval,
          "final_eval": record.final_eval, "env_steps": record.env_steps,
          "wall_seconds": record.wall_seconds, "env_steps_per_second": rate}


def _names(records: List[RunRecord], paths: Sequence[str]) -> List[str]:
  """Folder names, or the paths as given where two runs share a folder name."""
  names = [r.name for r in records]
  return [name if names.count(name) == 1 else str(path) for name, path in zip(names, paths)]
