"""One run's shared state when its roles run in separate processes.

The local launcher's roles share one `RunState` (launch/run_state.py). Under
Ray, and with roles started by hand, each role process keeps its own
`RunState` and a `StateLink` thread keeps it in step with the run's `RunHub`
every `_SYNC_SECONDS`: the link sends what changed here (env steps and
episodes since the last sync, new evals, a stop or a failure, this role's
rates) and takes back the run's totals. Roles read and write their local
state as in one process, so actor, learner and evaluator code is the same
under every launcher.

The hub is reached through a `sync(report) -> snapshot` function: a Ray actor
method under Ray (`ray_sync`), JSON over HTTP from a by-hand replay server
(`HubServer`, `http_sync`). Nothing is unpickled from the network outside
Ray's own cluster. The HTTP server binds to `run.bind_address` (127.0.0.1
unless the config says otherwise).
"""

import http.server
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Callable, Dict, Optional

import numpy as np

from reverie.launch import contract
from reverie.launch.errors import ReverieError, TrainingFailed
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.hub")
_SYNC_SECONDS = 0.1
_RECENT_RETURNS = 20  # the progress line's window (RunState.last_return)

Sync = Callable[[dict], dict]


class RunHub:
  """Holds the run's totals; each role process's `StateLink` syncs with it.

  Also keeps which roles are live (started and not yet done), how often each
  role has started (so a restarted actor knows it was restarted) and where
  each runs (`RunState.roles`: node and pid).
  """

  def __init__(self, state: Optional[RunState] = None, max_env_steps: int = 0,
               actor_count: int = 1, hold_actors: bool = False):
    self.state = state or RunState(max_env_steps=max_env_steps, actor_count=actor_count)
    self.state.hold_actors = self.state.hold_actors or hold_actors
    self._lock = threading.Lock()
    self._actor_rates: Dict[str, float] = {}
    self._live: Dict[str, float] = {}  # role -> time of its newest sync
    self._starts: Dict[str, int] = {}
    self._solved_path: Optional[str] = None
    self._error: Optional[dict] = None

  def register(self, role: str, node: str = "", pid: int = 0) -> int:
    """A role process started; returns how many times this role started before (restarts)."""
    with self._lock:
      restarts = self._starts.get(role, 0)
      self._starts[role] = restarts + 1
      with self.state.lock:
        self.state.roles = {**self.state.roles,
                            role: {"node": node, "pid": pid, "restarts": restarts}}
      self._live[role] = time.monotonic()
      return restarts

  def sync(self, report: dict) -> dict:
    """Books one role's report; returns the run's totals."""
    state, role = self.state, report.get("role", "")
    with self._lock:
      if report.get("done"):
        self._live.pop(role, None)
      elif role:
        self._live[role] = time.monotonic()
      if "env_steps_per_second" in report:
        self._actor_rates[role] = report["env_steps_per_second"]
        state.env_steps_per_second = float(np.mean(list(self._actor_rates.values())))
      if report.get("solved_path"):
        self._solved_path = report["solved_path"]
      if report.get("error") and self._error is None:
        self._error = report["error"]
    if report.get("env_steps") or report.get("episodes"):
      with state.lock:
        state.episodes += report.get("episodes", 0) - len(report.get("returns", []))
      state.add_env_steps(report.get("env_steps", 0), report.get("returns", []))
    with state.lock:
      state.train_step = max(state.train_step, report.get("train_step", 0))
      if role == "learner_0" and "learner_steps_per_second" in report:  # the chief
        state.learner_steps_per_second = report["learner_steps_per_second"]
      state.evals.extend(report.get("evals", []))
    if report.get("collection_done"):
      state.collection_done.set()
    if report.get("actors_released"):
      state.actors_released.set()
    if report.get("stop_reason") is not None:
      if report.get("interrupted"):
        state.interrupt(report["stop_reason"])
      elif self._error is not None and state.error is None:
        state.fail(remote_error(self._error))
      else:
        state.request_stop(report["stop_reason"])
    return self.snapshot()

  def snapshot(self) -> dict:
    state = self.state
    with state.lock:
      return {
          "env_steps": state.env_steps, "episodes": state.episodes,
          "recent_returns": state.recent_returns[-_RECENT_RETURNS:],
          "env_steps_per_second": state.env_steps_per_second,
          "train_step": state.train_step,
          "learner_steps_per_second": state.learner_steps_per_second,
          "evals": list(state.evals),
          "stop": state.stop.is_set(), "stop_reason": state.stop_reason,
          "interrupted": state.interrupted, "error": self._error or (
              describe_error(state.error, "coordinator") if state.error else None),
          "collection_done": state.collection_done.is_set(),
          "hold_actors": state.hold_actors, "actors_released": state.actors_released.is_set(),
          "solved_path": self._solved_path, "roles": state.roles,
      }

  def live_roles(self) -> Dict[str, float]:
    """Roles started and not done, with the seconds since each one's newest sync."""
    now = time.monotonic()
    with self._lock:
      return {role: now - seen for role, seen in self._live.items()}


def describe_error(error: BaseException, role: str) -> dict:
  """What a role's failure looks like on the wire."""
  return {"role": role, "type": type(error).__name__, "message": str(error),
          "exit_code": getattr(error, "exit_code", 1)}


def remote_error(error: dict) -> Exception:
  """The exception of a role's failure in another process, with the same exit code."""
  if error["exit_code"] == ReverieError.exit_code:
    return ReverieError(error["message"])
  if error["type"] == TrainingFailed.__name__:
    return TrainingFailed(error["message"])
  return TrainingFailed(f"{error['role']} failed: {error['type']}: {error['message']}")


class StateLink:
  """Keeps this process's RunState in step with the hub, in a thread.

  Args:
    state: This process's state; the role reads and writes it as usual.
    sync: Sends a report to the hub and returns its snapshot.
    role: `<role>_<i>` of this process.
    run_dir: Where the evaluator's confirmed weights go (`RunDir.solved_weights`).
    unreachable_seconds: After this long without an answer from the hub, the
      role stops with an error: a run whose coordinator is gone cannot finish.
  """

  def __init__(self, state: RunState, sync: Sync, role: str, run_dir: contract.RunDir,
               unreachable_seconds: float = 60.0):
    self._state, self._sync, self.role, self._run_dir = state, sync, role, run_dir
    self._unreachable_seconds = unreachable_seconds
    self._base_env_steps, self._base_episodes = state.env_steps, state.episodes
    self._sent_evals = 0
    self._sent_stop = self._sent_solved = self._sent_collection_done = False
    self._lock = threading.Lock()  # one sync at a time (the thread, then close())
    self._done = threading.Event()
    self._last_answer = time.monotonic()
    self._thread: Optional[threading.Thread] = None

  def start(self) -> "StateLink":
    self.sync_once()  # the run's totals before the role starts
    self._thread = threading.Thread(target=self._loop, name=f"{self.role}_link", daemon=True)
    self._thread.start()
    return self

  def close(self, done: bool = True) -> None:
    """Stops the thread; the last sync delivers what is left and (with `done`) says so."""
    self._done.set()
    if self._thread is not None:
      self._thread.join()
    try:
      self.sync_once(done=done)
    except (OSError, ConnectionError, RuntimeError) as e:
      log.warning("%s: last sync with the run's coordinator failed: %s", self.role, e)

  def _loop(self) -> None:
    while not self._done.wait(_SYNC_SECONDS):
      try:
        self.sync_once()
        self._last_answer = time.monotonic()
      except Exception as e:  # pylint: disable=broad-except
        silent = time.monotonic() - self._last_answer
        log.warning("%s: the run's coordinator did not answer (%s); %.0f s without it",
                    self.role, e, silent)
        if silent > self._unreachable_seconds and not self._state.stop.is_set():
          self._state.fail(ReverieError(
              f"the run's coordinator has not answered for {silent:.0f} s ({e}); is its "
              "replay server (or Ray driver) still running?"))
        time.sleep(1.0)

  def sync_once(self, done: bool = False) -> dict:
    with self._lock:
      report = self._report(done)
      snapshot = self._sync(report)
      self._apply(report, snapshot)
      return snapshot

  def _report(self, done: bool) -> dict:
    state = self._state
    stopping = state.stop.is_set()  # before the weights: the evaluator sets them first
    report = {"role": self.role, "done": done}
    with state.lock:
      report["env_steps"] = state.env_steps - self._base_env_steps
      report["episodes"] = episodes = state.episodes - self._base_episodes
      report["returns"] = state.recent_returns[-episodes:] if episodes else []
      report["evals"] = state.evals[self._sent_evals:]
      report["train_step"] = state.train_step
    if self.role.startswith("actor_"):
      report["env_steps_per_second"] = state.env_steps_per_second
    if self.role.startswith("learner_"):
      report["learner_steps_per_second"] = state.learner_steps_per_second
    if state.solved_weights is not None and not self._sent_solved:
      path = self._run_dir.solved_weights
      np.savez(path, *state.solved_weights)
      report["solved_path"] = str(path)
    if state.collection_done.is_set() and not self._sent_collection_done:
      report["collection_done"] = True
    if state.actors_released.is_set():
      report["actors_released"] = True
    if stopping and not self._sent_stop:
      report["stop_reason"] = state.stop_reason
      report["interrupted"] = state.interrupted
      if state.error is not None:
        report["error"] = describe_error(state.error, self.role)
    return report

  def _apply(self, report: dict, snapshot: dict) -> None:
    """Takes the run's totals, keeping what this process added during the sync."""
    state = self._state
    self._sent_solved |= "solved_path" in report
    self._sent_collection_done |= "collection_done" in report
    self._sent_stop |= "stop_reason" in report
    if snapshot["solved_path"] and state.solved_weights is None:
      with np.load(snapshot["solved_path"], allow_pickle=False) as saved:
        state.solved_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]
      self._sent_solved = True
    with state.lock:
      extra_steps = state.env_steps - self._base_env_steps - report["env_steps"]
      extra_episodes = state.episodes - self._base_episodes - report["episodes"]
      extra_returns = state.recent_returns[-extra_episodes:] if extra_episodes else []
      state.env_steps = snapshot["env_steps"] + extra_steps
      state.episodes = snapshot["episodes"] + extra_episodes
      state.recent_returns = snapshot["recent_returns"] + extra_returns
      self._base_env_steps, self._base_episodes = snapshot["env_steps"], snapshot["episodes"]
      state.train_step = max(state.train_step, snapshot["train_step"])
      if not self.role.startswith("learner_"):
        state.learner_steps_per_second = snapshot["learner_steps_per_second"]
      if not self.role.startswith("actor_"):
        state.env_steps_per_second = snapshot["env_steps_per_second"]
      self._sent_evals = len(state.evals)
      if len(snapshot["evals"]) > len(state.evals):
        state.evals.extend(snapshot["evals"][len(state.evals):])
        self._sent_evals = len(state.evals)
      state.hold_actors = snapshot["hold_actors"]
      state.roles = snapshot["roles"]
    if snapshot["collection_done"] or state.env_steps >= state.max_env_steps:
      state.collection_done.set()
    if snapshot["actors_released"]:
      state.actors_released.set()
    if snapshot["stop"] and not state.stop.is_set():
      self._sent_stop = True  # the hub knows already
      if snapshot["interrupted"]:
        state.interrupt(snapshot["stop_reason"])
      elif snapshot["error"] is not None:
        state.fail(remote_error(snapshot["error"]))
      else:
        state.request_stop(snapshot["stop_reason"])


def ray_sync(hub) -> Sync:
  """Sync through a Ray actor handle of `RunHub`."""
  import ray  # pylint: disable=g-import-not-at-top
  return lambda report: ray.get(hub.sync.remote(report), timeout=30)


class HubServer:
  """Serves a RunHub as JSON over HTTP (POST /sync, POST /register) on `host:port`."""

  def __init__(self, hub: RunHub, host: str, port: int):
    self.hub = hub

    class Handler(http.server.BaseHTTPRequestHandler):
      def do_POST(self):  # pylint: disable=invalid-name
        length = int(self.headers.get("Content-Length", 0))
        try:
          request = json.loads(self.rfile.read(length))
          if self.path == "/sync":
            answer = hub.sync(request)
          elif self.path == "/register":
            answer = {"restarts": hub.register(**request)}
          else:
            self.send_error(404, f"no {self.path} here; the coordinator serves /sync")
            return
        except (ValueError, TypeError, KeyError) as e:
          self.send_error(400, f"bad request: {e}")
          return
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

      def log_message(self, *args):  # requests are not news
        pass

    self._server = http.server.ThreadingHTTPServer((host, port), Handler)
    self._server.daemon_threads = True
    self.address = f"{host}:{self._server.server_address[1]}"
    self._thread = threading.Thread(target=self._server.serve_forever, name="hub_server",
                                    daemon=True)
    self._thread.start()

  def close(self) -> None:
    self._server.shutdown()
    self._server.server_close()


def _post(address: str, path: str, body: dict, timeout: float) -> dict:
  request = urllib.request.Request(f"http://{address}{path}", data=json.dumps(body).encode(),
                                   headers={"Content-Type": "application/json"})
  with urllib.request.urlopen(request, timeout=timeout) as answer:
    return json.loads(answer.read())


def http_sync(address: str, timeout: float = 10.0) -> Sync:
  """Sync with a HubServer at `address`."""
  return lambda report: _post(address, "/sync", report, timeout)


def http_register(address: str, role: str, node: str, pid: int, timeout: float = 10.0) -> int:
  """Registers a role with the HubServer at `address`; raises ReverieError if none answers."""
  try:
    return _post(address, "/register", {"role": role, "node": node, "pid": pid},
                 timeout)["restarts"]
  except (urllib.error.URLError, OSError) as e:
    raise ReverieError(f"--coordinator {address}: no coordinator answers there ({e}); start "
                       "`reverie replay-server` first and pass the address it prints") from None
