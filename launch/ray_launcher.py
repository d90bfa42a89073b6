"""Ray launcher (`run.launcher: ray`): every role a Ray actor, on one machine or a cluster.

    reverie train dqn_cartpole --set run.launcher=ray --set actor.count=4

With no `run.ray_address` and no RAY_ADDRESS, `ray.init()` starts a local
cluster (no dashboard) and shuts it down at the end; otherwise the run joins
that cluster. Ray's processes, like Reverb, listen on every interface. The
replay server, `actor.count` actors, the learner and the evaluator each run
in their own Ray actor process (launch/ray_roles.py) with the resources their config asks for (`actor.num_cpus`, `learner.num_gpus`, ...);
actors are spread over the nodes. The replay server's address comes back
from its Ray actor, so nobody types it. The run directory must be on storage
every node sees (docs/cluster.md).

Ray restarts a dead actor up to `actor.max_restarts` times: the new process
registers with the run's hub, writes `actor/restarts`, rewrites
RUN_DIR/pids/actor_<i>, reconnects to Reverb, pulls the newest weights and
collects again. Under `strategy.kind: multi_worker` the learner is a Ray
Train `TensorflowTrainer` with `strategy.workers` workers (Ray Train sets
TF_CONFIG for MultiWorkerMirroredStrategy).

The roles share the run's counters through a `RunHub` Ray actor
(launch/hub.py); this process mirrors them for the progress line and
status.json, and Ctrl-C here stops every role and leaves a resumable run.
"""

import logging
import os
import signal
import threading
import time
from typing import Dict, Optional

from reverie.launch import contract
from reverie.launch import ray_roles
from reverie.launch.config_schema import Config
from reverie.launch.errors import ReverieError, TrainingFailed
from reverie.launch.hub import RunHub, StateLink, ray_sync, remote_error
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.launch")
_START_TIMEOUT_SECONDS = 180.0  # a role Ray cannot place (or start) by then fails the run
_STOP_TIMEOUT_SECONDS = 60.0    # roles still running this long after the learner ended are killed
_POLL_SECONDS = 0.2


def run_ray(config: Config, run_dir: contract.RunDir, progress, state: RunState,
            resume: bool = False) -> None:
  """Runs every role on Ray until the run stops; raises what a role raised."""
  import ray  # pylint: disable=g-import-not-at-top
  threading.current_thread().name = "launcher_0"
  started = time.monotonic()
  started_here = _connect(config, progress)
  log.info("Ray ready after %.1f s", time.monotonic() - started)
  try:
    _Run(config, run_dir, progress, state, resume).run()
  finally:
    if started_here:
      ray.shutdown()


def _connect(config: Config, progress) -> bool:
  """Joins run.ray_address / RAY_ADDRESS, or starts a local cluster; True if it started one."""
  import warnings  # pylint: disable=g-import-not-at-top
  # Notes about Ray's future releases, not about this run; Reverie pins Ray 2.55.1 and pydantic 1
  # (tf-agents 0.19 pins typing-extensions 4.5, too old for pydantic 2).
  os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
  warnings.filterwarnings("ignore", message="Pydantic v1 is deprecated", category=FutureWarning)
  import ray  # pylint: disable=g-import-not-at-top
  address = config.run.ray_address or os.environ.get("RAY_ADDRESS")
  options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=False)
  # Ray's processes inherit this thread's signal mask; SIGTERM must reach them (ray.shutdown).
  blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
  try:
    if address:
      try:
        ray.init(address=address, **options)
      except (ConnectionError, RuntimeError, ValueError) as e:
        raise ReverieError(f"run.ray_address {address}: no Ray cluster answers there ({e}); "
                           "start one with `ray start --head`, or leave run.ray_address and "
                           "RAY_ADDRESS unset for a local cluster") from None
      progress.note(f"Ray: joined the cluster at {address}")
      return False
    cpus = max(os.cpu_count() or 1, _cpus_needed(config))
    ray.init(num_cpus=cpus, **options)
    # Seen with `ss -ltnp`: Ray's GCS, raylet and workers listen on every interface, and
    # ray.init(_node_ip_address=...) does not change that.
    progress.note(f"Ray: started a local cluster ({cpus} CPUs); like Reverb it listens on every "
                  "interface: keep this machine on a private network")
    _check_gpus(config)
    return True
  finally:
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _check_gpus(config: Config) -> None:
  """A local cluster never grows: GPUs it lacks fail the run at once, not after a placement wait."""
  import ray  # pylint: disable=g-import-not-at-top
  learners = config.strategy.workers if config.strategy.kind == "multi_worker" else 1
  asked, present = learners * config.learner.num_gpus, ray.cluster_resources().get("GPU", 0)
  if asked > present:
    ray.shutdown()
    raise ReverieError(f"learner.num_gpus: the learner asks for {asked:g} GPU(s) in all, and "
                       f"this machine's Ray cluster has {present:g}; set learner.num_gpus=0, or "
                       "join a cluster with GPUs (run.ray_address)")


def _cpus_needed(config: Config) -> int:
  learners = config.strategy.workers if config.strategy.kind == "multi_worker" else 1
  return int(round(config.actor.count * config.actor.num_cpus + learners * config.learner.num_cpus
                   + config.replay.num_cpus + config.eval.num_cpus + 0.499))


class _Run:
  """One run on Ray: starts the roles in order, watches them, stops them."""

  def __init__(self, config: Config, run_dir: contract.RunDir, progress, state: RunState,
               resume: bool):
    import ray  # pylint: disable=g-import-not-at-top
    self.config, self.progress, self.state, self.resume = config, progress, state, resume
    self.run_dir = contract.RunDir(run_dir.root.resolve())
    self.multi_worker = config.strategy.kind == "multi_worker"
    self.hub = ray.remote(num_cpus=0)(RunHub).remote(
        max_env_steps=config.run.max_env_steps, actor_count=config.actor.count,
        hold_actors=self.multi_worker)
    self.link = StateLink(state, ray_sync(self.hub), "launcher_0", self.run_dir)
    self.roles: Dict[str, object] = {}  # name -> Ray actor handle
    self.waits: Dict[object, str] = {}  # the roles' wait() calls -> name
    self.trainer_thread: Optional[threading.Thread] = None
    self.replay = None

  def run(self) -> None:
    import ray  # pylint: disable=g-import-not-at-top
    self.link.start()
    try:
      self._start_roles()
      self._watch()
    except BaseException as e:
      self.state.fail(e)
      raise
    finally:
      self._stop()
      self.link.close()
      for handle in [*self.roles.values(), self.replay, self.hub]:
        if handle is not None:
          ray.kill(handle)

  def _start_roles(self) -> None:
    """Every role at once; each waits for the replay server's address in its own process.

    Actors and the evaluator then wait inside their first pull for the
    learner's first weights, so nothing needs starting in order.
    """
    config, root = self.config, str(self.run_dir.root)
    replay_cls, role_cls = ray_roles.actor_classes()
    self.replay = replay_cls.options(num_cpus=config.replay.num_cpus).remote(root, self.hub)
    if self.multi_worker:
      self.trainer_thread = threading.Thread(target=self._train_with_ray_train, name="ray_train",
                                             daemon=True)
    else:
      learner = role_cls.options(num_cpus=config.learner.num_cpus,
                                 num_gpus=config.learner.num_gpus).remote(
                                     "learner", 0, root, self.replay, self.hub, self.resume)
      self._add("learner_0", learner)
    for i in range(config.actor.count):
      actor = role_cls.options(num_cpus=config.actor.num_cpus,
                               max_restarts=config.actor.max_restarts, max_task_retries=-1,
                               scheduling_strategy="SPREAD").remote(
                                   "actor", i, root, self.replay, self.hub, False)
      self._add(f"actor_{i}", actor)
    evaluator = role_cls.options(num_cpus=config.eval.num_cpus).remote(
        "evaluator", 0, root, self.replay, self.hub, False)
    self._add("evaluator_0", evaluator)
    address = self._started(self.replay.address.remote(), "replay_server_0",
                            f"{config.replay.num_cpus:g} CPU")
    self.progress.note(f"Ray: replay server at {address} (Reverb listens on every interface of "
                       "its node: keep the cluster on a private network)")
    log.info("replay server at %s", address)
    if self.trainer_thread is not None:
      self.trainer_thread.start()
    asks = {"learner_0": f"{config.learner.num_cpus:g} CPU and {config.learner.num_gpus:g} GPU",
            "evaluator_0": f"{config.eval.num_cpus:g} CPU"}
    for name, handle in list(self.roles.items()):
      self._started(handle.ready.remote(), name,
                    asks.get(name, f"{config.actor.num_cpus:g} CPU"))
    log.info("every role started: %s", ", ".join(self.roles))

  def _add(self, name: str, handle) -> None:
    self.roles[name] = handle
    self.waits[handle.wait.remote()] = name

  def _started(self, ref, name: str, asks: str):
    """Waits for a role to start; a role Ray cannot place in time fails with one line."""
    import ray  # pylint: disable=g-import-not-at-top
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while True:
      ready, _ = ray.wait([ref], timeout=_POLL_SECONDS)
      if ready:
        try:
          return ray.get(ref)
        except ray.exceptions.RayActorError as e:
          raise TrainingFailed(f"{name} died while starting: {_first_line(e)}; its log is "
                               f"{self.run_dir.log(*name.rsplit('_', 1))}") from None
      if self.state.stop.is_set():
        raise self.state.error or KeyboardInterrupt()
      if time.monotonic() > deadline:
        raise ReverieError(
            f"Ray did not start {name} within {_START_TIMEOUT_SECONDS:.0f} s: it asks for "
            f"{asks} and the cluster has {ray.available_resources()} free; lower the role's "
            "num_cpus/num_gpus in the config or add nodes (`ray status` shows them)")

  def _watch(self) -> None:
    """Until the learner ends (or any role fails): progress comes through the hub."""
    import ray  # pylint: disable=g-import-not-at-top
    learner_done = False
    while not learner_done:
      if self.multi_worker:
        self.trainer_thread.join(_POLL_SECONDS)
        learner_done = not self.trainer_thread.is_alive()
      ready, _ = ray.wait(list(self.waits), timeout=0 if self.multi_worker else _POLL_SECONDS)
      for ref in ready:
        name = self.waits.pop(ref)
        self._outcome(ref, name)
        learner_done |= name == "learner_0"
      if self.state.error is not None:
        raise self.state.error

  def _outcome(self, ref, name: str) -> None:
    """A role's wait() returned: fine, its role failed, or its process died for good."""
    import ray  # pylint: disable=g-import-not-at-top
    try:
      error = ray.get(ref)
    except ray.exceptions.RayActorError as e:
      log.error("%s died: %s", name, e)
      self.state.fail(TrainingFailed(f"{name} died and Ray did not restart it: "
                                     f"{_first_line(e)}; see {self.run_dir.log(*name.rsplit('_', 1))}"))
      return
    if error is not None and self.state.error is None:
      self.state.fail(remote_error(error))

  def _train_with_ray_train(self) -> None:
    """multi_worker: `strategy.workers` Ray Train workers run the learner; then actors go."""
    from ray.train import RunConfig, ScalingConfig  # pylint: disable=g-import-not-at-top
    from ray.train.tensorflow import TensorflowTrainer  # pylint: disable=g-import-not-at-top
    config = self.config
    resources = {"CPU": config.learner.num_cpus}
    if config.learner.num_gpus:
      resources["GPU"] = config.learner.num_gpus
    trainer = TensorflowTrainer(
        ray_roles.ray_train_worker,
        train_loop_config={"root": str(self.run_dir.root), "replay": self.replay,
                           "hub": self.hub},
        scaling_config=ScalingConfig(num_workers=config.strategy.workers,
                                     use_gpu=bool(config.learner.num_gpus),
                                     resources_per_worker=resources),
        run_config=RunConfig(name="ray_train", storage_path=str(self.run_dir.root / "ray_train")))
    try:
      trainer.fit()
    except Exception as e:  # pylint: disable=broad-except
      if self.state.error is None:
        self.state.fail(TrainingFailed(f"Ray Train learner failed: {_first_line(e)}; see "
                                       f"{self.run_dir.log('learner', 0)}"))
    finally:
      self.state.actors_released.set()

  def _stop(self) -> None:
    """Stops every role, waits for them (then kills), checkpoints the replay."""
    import ray  # pylint: disable=g-import-not-at-top
    self.state.request_stop("shutting down")
    self.state.actors_released.set()
    if self.trainer_thread is not None:
      self.trainer_thread.join(_STOP_TIMEOUT_SECONDS)
    deadline = time.monotonic() + _STOP_TIMEOUT_SECONDS
    while self.waits and time.monotonic() < deadline:
      ready, _ = ray.wait(list(self.waits), timeout=_POLL_SECONDS)
      for ref in ready:
        self._outcome(ref, self.waits.pop(ref))
    if self.waits:
      log.warning("roles still running %.0f s after the stop, killed: %s",
                  _STOP_TIMEOUT_SECONDS, ", ".join(sorted(self.waits.values())))
    if self.replay is not None:
      try:
        ray.get(self.replay.close.remote(), timeout=_STOP_TIMEOUT_SECONDS)
      except (ray.exceptions.RayError, TimeoutError) as e:
        log.warning("replay server did not close cleanly: %s", e)


def _first_line(error: BaseException) -> str:
  lines = [line for line in str(error).splitlines() if line.strip()]
  return lines[0] if lines else type(error).__name__
