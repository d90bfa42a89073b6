"""RUN_DIR/lineage.json: where a run came from (DESIGN.md, 'The run directory').

Written when `reverie train` starts: the resolved config's hash, the Reverie
source tree's git commit and dirty flag, package versions, host, command line
and start time; `append_resume` adds one entry per `--resume`. Nothing here
imports TensorFlow: versions come from installed package metadata.
"""

import datetime
import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import shlex
import socket
import subprocess
import time
from typing import Optional, Sequence, Union

# contract.RunDir, imported where used: contract imports TensorFlow (through tf-agents).
RunDirLike = Union["contract.RunDir", str, os.PathLike]

# Packages whose versions change results; ray only where installed.
PACKAGES = ("reverie", "tensorflow", "tf-agents", "dm-reverb", "tensorflow-probability",
            "gymnasium", "gym", "numpy")
OPTIONAL_PACKAGES = ("ray",)

# The Reverie source tree: the folder that holds launch/, agents/ and envs/.
SOURCE_ROOT = pathlib.Path(__file__).resolve().parents[1]


def config_hash(config_yaml: str) -> str:
  """sha256 (hex) of the resolved config's YAML text, as written to config.yaml."""
  return hashlib.sha256(config_yaml.encode("utf-8")).hexdigest()


def git_state(source_root: pathlib.Path = SOURCE_ROOT) -> Optional[dict]:
  """{"commit", "dirty"} of the git checkout at `source_root`, or None.

  None when Reverie runs from an installed wheel (its folder is not the top
  of a checkout, even when a virtualenv sits inside one) or git is missing.
  """
  def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(source_root), *args], capture_output=True,
                          text=True, timeout=10, check=True).stdout.strip()
  try:
    if pathlib.Path(git("rev-parse", "--show-toplevel")).resolve() != source_root.resolve():
      return None
    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
  except (OSError, subprocess.SubprocessError):
    return None
  return {"commit": commit, "dirty": dirty}


def package_versions() -> dict:
  """{distribution: version or None} for PACKAGES, plus OPTIONAL_PACKAGES that are installed."""
  versions = {}
  for name in PACKAGES + OPTIONAL_PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      if name not in OPTIONAL_PACKAGES:
        versions[name] = None
  return versions


def write_lineage(run_dir: RunDirLike, config_yaml: str, command_line: Sequence[str]) -> dict:
  """Writes RUN_DIR/lineage.json for a new run and returns what it wrote."""
  run_dir = _as_run_dir(run_dir)
  now = time.time()
  record = {
      "config_sha256": config_hash(config_yaml),
      "git": git_state(),
      "source_root": str(SOURCE_ROOT),
      "packages": package_versions(),
      "python": platform.python_version(),
      "host": socket.gethostname(),
      "pid": os.getpid(),
      "command_line": shlex.join(command_line),
      "started_at": datetime.datetime.fromtimestamp(now).isoformat(),
      "started_at_unix": now,
      "resumes": [],
  }
  _write_json(run_dir.lineage, record)
  return record


def append_resume(run_dir: RunDirLike, command_line: Sequence[str], train_step: int) -> dict:
  """Adds one entry to lineage.json's `resumes` when a run goes on; returns the entry.

  The entry holds the command line, the train step the run resumed from, the
  hash of config.yaml as it is now (a resume may override keys), the git
  state, host and time. A run without lineage.json (made before lineage
  existed) gets a file holding only its resumes.
  """
  run_dir = _as_run_dir(run_dir)
  record = json.loads(run_dir.lineage.read_text()) if run_dir.lineage.is_file() else {}
  config = run_dir.config.read_text() if run_dir.config.is_file() else None
  entry = {
      "command_line": shlex.join(command_line),
      "train_step": int(train_step),
      "config_sha256": config_hash(config) if config is not None else None,
      "git": git_state(),
      "host": socket.gethostname(),
      "resumed_at": datetime.datetime.now().isoformat(),
  }
  record.setdefault("resumes", []).append(entry)
  _write_json(run_dir.lineage, record)
  return entry


def read_lineage(run_dir: RunDirLike) -> Optional[dict]:
  """lineage.json's content, or None when the run has none (or it is unreadable)."""
  try:
    return json.loads(_as_run_dir(run_dir).lineage.read_text())
  except (OSError, ValueError):
    return None


def _as_run_dir(run_dir: RunDirLike):
  from reverie.launch import contract  # pylint: disable=g-import-not-at-top
  return run_dir if isinstance(run_dir, contract.RunDir) else contract.RunDir(run_dir)


def _write_json(path: pathlib.Path, record: dict) -> None:
  """Writes beside `path` and renames into place, so a reader never sees half a file."""
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  tmp.write_text(json.dumps(record, indent=2) + "\n")
  os.replace(tmp, path)
