"""The Ray actors of the Ray launcher (launch/ray_launcher.py): one per role process.

`ReplayRole` holds the Reverb server, `Role` runs an actor, the learner or
the evaluator in a thread (made again by Ray when an actor's process dies),
and `ray_train_worker` is the body of each Ray Train worker under
multi_worker. Each role's process registers with the run's hub and keeps its
RunState in step with it (launch/hub.py).
"""

import logging
import os
import threading
from typing import Optional

from reverie.launch import contract
from reverie.launch.hub import StateLink, describe_error, ray_sync
from reverie.launch.run_state import RunState


def node_address(node_id: str) -> str:
  """The address Ray knows node `node_id` by: where other nodes reach its Reverb server."""
  import ray  # pylint: disable=g-import-not-at-top
  for node in ray.nodes():
    if node["NodeID"] == node_id:
      return node["NodeManagerAddress"]
  return ray.util.get_node_ip_address()


def ray_train_worker(loop_config: dict) -> None:
  """One Ray Train worker: a learner worker of MultiWorkerMirroredStrategy (TF_CONFIG is set)."""
  import json  # pylint: disable=g-import-not-at-top
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  from reverie.launch import learner_worker  # pylint: disable=g-import-not-at-top
  from reverie.launch import roles  # pylint: disable=g-import-not-at-top
  run_dir = contract.RunDir(loop_config["root"])
  index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
  roles.setup_process_log(run_dir, "learner", index)
  roles.write_pid(run_dir, "learner", index)
  hub = loop_config["hub"]
  import ray  # pylint: disable=g-import-not-at-top
  ray.get(hub.register.remote(f"learner_{index}", ray.get_runtime_context().get_node_id(),
                              os.getpid()))
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  config = load_config(str(run_dir.config)).config
  state = RunState(max_env_steps=config.run.max_env_steps, actor_count=config.actor.count)
  link = StateLink(state, ray_sync(hub), f"learner_{index}", run_dir).start()
  request = learner_worker.StopRequest()

  def stop_when_the_run_does():
    state.stop.wait()
    request.interrupted = state.interrupted
    if state.solved_weights is not None:
      request.weights_path = str(run_dir.solved_weights)
    request.event.set()

  threading.Thread(target=stop_when_the_run_does, daemon=True).start()
  try:
    address = ray.get(loop_config["replay"].address.remote())
    learner_worker.train_worker(run_dir.root, address, request,
                                state=state if index == 0 else None)
  except BaseException as e:
    logging.getLogger("reverie.learner").exception("learner_%d failed", index)
    state.fail(e)
    raise
  finally:
    link.close()


def actor_classes():
  """(ReplayRole, Role) as Ray actor classes; made on first use, after `import ray`."""
  global _ACTOR_CLASSES  # pylint: disable=global-statement
  if _ACTOR_CLASSES is None:
    import ray  # pylint: disable=g-import-not-at-top
    # max_concurrency: ready() and wait() answer while the role runs in its own thread.
    _ACTOR_CLASSES = (ray.remote(max_concurrency=4)(ReplayRole),
                      ray.remote(max_concurrency=4)(Role))
  return _ACTOR_CLASSES


_ACTOR_CLASSES = None


class ReplayRole:
  """The Reverb server and its reporter, in a Ray actor; `close()` checkpoints and stops it."""

  def __init__(self, root: str, hub):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import portpicker  # pylint: disable=g-import-not-at-top
    import ray  # pylint: disable=g-import-not-at-top
    from reverie.launch import roles  # pylint: disable=g-import-not-at-top
    from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
    from reverie.launch.replay_server import run_replay_server, start_replay_server  # pylint: disable=g-import-not-at-top
    run_dir = contract.RunDir(root)
    config = load_config(str(run_dir.config)).config
    roles.setup_process_log(run_dir, "replay_server", 0)
    roles.write_pid(run_dir, "replay_server", 0)
    node = ray.get_runtime_context().get_node_id()
    ray.get(hub.register.remote("replay_server_0", node, os.getpid()))
    roles.configure_tensorflow(config)
    port = config.replay.port or portpicker.pick_unused_port()
    self._server = start_replay_server(config, run_dir, port, *roles.env_specs(config))
    self._address = f"{node_address(node)}:{port}"
    self._run_dir = run_dir
    self._state = RunState(max_env_steps=config.run.max_env_steps)
    self._link = StateLink(self._state, ray_sync(hub), "replay_server_0", run_dir).start()
    self._reporter = threading.Thread(
        target=run_replay_server, name="replay_server_0",
        args=(self._server, run_dir, self._state, config.replay.checkpoint_interval_seconds),
        daemon=True)
    self._reporter.start()

  def address(self) -> str:
    return self._address

  def close(self) -> None:
    from reverie.launch.replay_server import checkpoint_replay  # pylint: disable=g-import-not-at-top
    self._state.request_stop("shutting down")
    self._reporter.join(timeout=10)
    checkpoint_replay(self._server, self._run_dir, self._state.train_step)
    self._server.stop()
    self._link.close()


class Role:
  """Actor, learner or evaluator `index` in a Ray actor: the role runs in a thread.

  Made again by Ray after its process dies (`max_restarts`): the role starts
  over, registers as a restart and goes on with the run.
  """

  def __init__(self, role: str, index: int, root: str, replay, hub, resume: bool):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import ray  # pylint: disable=g-import-not-at-top
    from reverie.launch import roles  # pylint: disable=g-import-not-at-top
    self._ready, self._done = threading.Event(), threading.Event()
    self._error: Optional[dict] = None
    node = ray.get_runtime_context().get_node_id()
    register = lambda name, node, pid: ray.get(hub.register.remote(name, node, pid))
    name = f"{role}_{index}"

    def body():
      try:
        address = ray.get(replay.address.remote())
        roles.run_role_process(role, index, contract.RunDir(root), address, ray_sync(hub),
                               register, node=node, resume=resume,
                               ready=self._ready if role == "learner" else None)
      except BaseException as e:  # pylint: disable=broad-except
        self._error = describe_error(e, name)
      finally:
        self._ready.set()
        self._done.set()

    if role != "learner":
      self._ready.set()
    threading.Thread(target=body, name=name, daemon=True).start()

  def ready(self) -> int:
    self._ready.wait()
    return os.getpid()

  def wait(self) -> Optional[dict]:
    """Blocks until the role ends; its failure (as `hub.describe_error`) or None."""
    self._done.wait()
    return self._error
