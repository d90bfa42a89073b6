"""The local launcher's learner under multi_worker: `strategy.workers` processes on 127.0.0.1.

Each worker is `python -m reverie.launch.learner_worker` with a generated
TF_CONFIG (free ports on 127.0.0.1), its stderr in RUN_DIR/logs/learner_<i>.log
and its pid in RUN_DIR/pids/learner_<i>. The launcher watches them: a worker
that exits early stops the run within `_POLL_SECONDS` with its last words,
and the others are killed, so a run never hangs on a dead peer's collective.
TensorFlow's collective servers, like Reverb, listen on every interface of
the host: keep these ports inside a private network.
"""

import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional

import numpy as np
import portpicker

from reverie.launch import contract
from reverie.launch.config_schema import Config
from reverie.launch.errors import ReverieError, TrainingFailed
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.launch")
_POLL_SECONDS = 0.1
_KILL_GRACE_SECONDS = 5.0


def tf_config(ports: List[int], index: int) -> dict:
  """The TF_CONFIG of worker `index` in a cluster of workers on 127.0.0.1 at `ports`."""
  return {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
          "task": {"type": "worker", "index": index}}


class LearnerWorkers:
  """Starts, watches and stops the learner worker processes of one run."""

  def __init__(self, config: Config, run_dir: contract.RunDir, replay_address: str,
               state: RunState):
    self._state, self._run_dir = state, run_dir
    tf_configs = _cluster(config.strategy.workers)
    gpus = _gpu_shares(len(tf_configs))
    self._stopping = False
    self._errors: dict = {}
    self._procs: List[subprocess.Popen] = []
    for index, worker_tf_config in enumerate(tf_configs):
      env = {**os.environ, "TF_CONFIG": json.dumps(worker_tf_config),
             "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
             "PYTHONUNBUFFERED": "1"}
      if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index]
      path = run_dir.log("learner", index)
      path.parent.mkdir(parents=True, exist_ok=True)
      with open(path, "ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reverie.launch.learner_worker", str(run_dir.root),
             replay_address],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True,
            start_new_session=True)  # Ctrl-C reaches the launcher, which stops them in order
      self._procs.append(proc)
      pid_path = run_dir.pid("learner", index)
      pid_path.parent.mkdir(parents=True, exist_ok=True)
      pid_path.write_text(f"{proc.pid}\n")
      threading.Thread(target=self._read, args=(index, proc), name=f"learner_{index}_reader",
                       daemon=True).start()
    log.info("learner: %d local worker processes of the cluster %s (TensorFlow's collective "
             "servers listen on every interface)", len(tf_configs),
             tf_configs[0]["cluster"]["worker"])

  def _read(self, index: int, proc: subprocess.Popen) -> None:
    for line in proc.stdout:
      try:
        record = json.loads(line)
      except ValueError:
        continue
      if "error" in record:
        self._errors[index] = record
      elif "done" in record:
        if index == 0:
          self._state.train_step = record["done"]
      elif index == 0:
        self._state.train_step = record["train_step"]
        self._state.learner_steps_per_second = record["steps_per_second"]

  def watch(self, until) -> None:
    """Returns once `until()` is true; raises when a worker ended before it was asked to."""
    while not until():
      self.check()
      time.sleep(_POLL_SECONDS)

  def check(self) -> None:
    for index, proc in enumerate(self._procs):
      code = proc.poll()
      if code is not None and not self._stopping:
        self.kill()
        raise self._failure(index, code)

  def stop(self, weights: Optional[list], interrupted: bool, timeout_seconds: float) -> None:
    """Asks every worker to stop (and export `weights`, or the newest); waits for them."""
    self._stopping = True
    with tempfile.TemporaryDirectory(prefix="reverie-weights-") as scratch:
      order = "interrupt"
      if not interrupted:
        order = "stop"
        if weights is not None:
          path = pathlib.Path(scratch) / "weights.npz"
          np.savez(path, *weights)
          order = f"stop {path}"
      for proc in self._procs:
        try:
          proc.stdin.write(order + "\n")
          proc.stdin.flush()
        except (BrokenPipeError, OSError):
          pass  # it ended already; its exit code says how
      deadline = time.monotonic() + timeout_seconds
      for index, proc in enumerate(self._procs):
        try:
          code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
          self.kill()
          raise TrainingFailed(f"learner worker {index} did not stop within {timeout_seconds:.0f} s "
                               f"of being asked; killed (see {self._run_dir.log('learner', index)})"
                               ) from None
        if code != 0:
          self.kill()
          raise self._failure(index, code)

  def kill(self) -> None:
    """Terminates every worker still running (SIGKILL after a grace period)."""
    alive = [proc for proc in self._procs if proc.poll() is None]
    for proc in alive:
      os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + _KILL_GRACE_SECONDS
    for proc in alive:
      try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

  def _failure(self, index: int, code: int) -> Exception:
    self._procs[index].wait()
    time.sleep(_POLL_SECONDS)  # its last stdout line may still be on the way
    record = self._errors.get(index)
    if record is not None:
      cls = ReverieError if record["exit_code"] == ReverieError.exit_code else TrainingFailed
      return cls(f"learner worker {index}: {record['error']}")
    return TrainingFailed(
        f"learner worker {index} exited with code {code} ({_last_line(self._run_dir, index)}); "
        f"the run stopped, see {self._run_dir.log('learner', index)}")


def _cluster(workers: int) -> List[dict]:
  """The TF_CONFIG of each worker this host starts.

  Without TF_CONFIG in the environment: `workers` workers on free ports of
  127.0.0.1. With one (several hosts, docs/multi_gpu.md): its cluster, and
  only its own task here, which must be the chief (worker 0); the user starts
  the others on their hosts with `learner_worker ... --remote`.
  """
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    ports = [portpicker.pick_unused_port() for _ in range(workers)]
    return [tf_config(ports, index) for index in range(workers)]
  try:
    given = json.loads(raw)
    addresses, task = given["cluster"]["worker"], given["task"]
  except (ValueError, KeyError, TypeError) as e:
    raise ReverieError(f"TF_CONFIG: not a cluster spec with workers ({e}); see "
                       "docs/multi_gpu.md") from None
  if len(addresses) != workers:
    raise ReverieError(f"strategy.workers: {workers}, but TF_CONFIG names {len(addresses)} "
                       "workers; give the same count")
  if task.get("type") != "worker" or task.get("index") != 0:
    raise ReverieError("TF_CONFIG: the host that runs `reverie train` runs the chief; give it "
                       '"task": {"type": "worker", "index": 0}')
  return [given]


def _gpu_shares(count: int) -> Optional[List[str]]:
  """CUDA_VISIBLE_DEVICES of each worker: the host's GPUs split evenly, or None without GPUs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  gpus = len(tf.config.list_physical_devices("GPU"))
  if not gpus:
    return None
  if gpus % count:
    raise ReverieError(f"strategy.workers: {count} workers cannot share this host's {gpus} GPUs "
                       "evenly; give a divisor of the GPU count")
  per = gpus // count
  return [",".join(str(g) for g in range(i * per, (i + 1) * per)) for i in range(count)]


def _last_line(run_dir: contract.RunDir, index: int) -> str:
  try:
    lines = run_dir.log("learner", index).read_text(errors="replace").strip().splitlines()
  except OSError:
    return "no log"
  return lines[-1][-300:] if lines else "its log is empty"
