"""The run's hub and the links that keep each role process's RunState in step with it.

Role processes are stood in for by RunStates in this process, linked to one
RunHub directly and through its real HTTP server on 127.0.0.1.
"""

import threading
import urllib.request

import numpy as np
import pytest

from reverie.launch import contract
from reverie.launch.errors import ReverieError, TrainingFailed
from reverie.launch.hub import HubServer, RunHub, StateLink, http_register, http_sync
from reverie.launch.run_state import RunState


def _linked(hub, role, tmp_path, sync=None, max_env_steps=1000):
  state = RunState(max_env_steps=max_env_steps, actor_count=2)
  link = StateLink(state, sync or hub.sync, role, contract.RunDir(tmp_path))
  return state, link


def test_env_steps_and_returns_add_up_across_processes(tmp_path):
  hub = RunHub(max_env_steps=1000, actor_count=2)
  actors = [_linked(hub, f"actor_{i}", tmp_path) for i in range(2)]
  evaluator, evaluator_link = _linked(hub, "evaluator_0", tmp_path)
  for i, (state, link) in enumerate(actors):
    state.add_env_steps(100 * (i + 1), [10.0 * (i + 1)])
    state.env_steps_per_second = 50.0 * (i + 1)
    link.sync_once()
  for _, link in actors:  # a second sync sends nothing twice
    link.sync_once()
  evaluator_link.sync_once()
  assert hub.state.env_steps == 300 and hub.state.episodes == 2
  assert sorted(hub.state.recent_returns) == [10.0, 20.0]
  assert evaluator.env_steps == 300 and evaluator.episodes == 2
  assert evaluator.env_steps_per_second == pytest.approx(75.0)  # mean of rate * actor count
  # Steps an actor adds while its sync is on the way are kept, not lost or doubled.
  state, link = actors[0]
  state.add_env_steps(5, [])
  link.sync_once()
  assert hub.state.env_steps == 305 and state.env_steps == 305


def test_budget_stop_evals_and_confirmed_weights_reach_every_role(tmp_path):
  hub = RunHub(max_env_steps=100, actor_count=1)
  actor, actor_link = _linked(hub, "actor_0", tmp_path, max_env_steps=100)
  learner, learner_link = _linked(hub, "learner_0", tmp_path, max_env_steps=100)
  evaluator, evaluator_link = _linked(hub, "evaluator_0", tmp_path, max_env_steps=100)
  actor.add_env_steps(120, [])
  actor_link.sync_once()
  learner.train_step, learner.learner_steps_per_second = 42, 7.0
  learner_link.sync_once()
  evaluator_link.sync_once()
  assert evaluator.collection_done.is_set() and learner.train_step == 42
  assert evaluator.learner_steps_per_second == 7.0
  weights = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)]
  evaluator.evals.append({"avg_return": 500.0, "env_steps": 120})
  evaluator.solved_weights = weights
  evaluator.request_stop("reached stop_at_return 475")
  evaluator_link.sync_once()
  learner_link.sync_once()
  assert learner.stop.is_set() and learner.stop_reason == "reached stop_at_return 475"
  assert not learner.interrupted and learner.error is None
  assert [e["avg_return"] for e in learner.evals] == [500.0]
  for got, want in zip(learner.solved_weights, weights):
    np.testing.assert_array_equal(got, want)
  assert hub.state.evals == evaluator.evals  # one copy each, not two


def _from_to(sender_role, receiver_role, act, tmp_path):
  """`act(sender)` in one process's state; returns (hub, receiver) after both have synced."""
  hub = RunHub(max_env_steps=100)
  sender, sender_link = _linked(hub, sender_role, tmp_path)
  receiver, receiver_link = _linked(hub, receiver_role, tmp_path)
  act(sender)
  sender_link.sync_once()
  receiver_link.sync_once()
  return hub, receiver


def test_interrupt_and_failure_travel_with_their_exit_codes(tmp_path):
  _, learner = _from_to("launcher_0", "learner_0",
                        lambda launcher: launcher.interrupt("interrupted"), tmp_path)
  assert learner.interrupted and learner.stop.is_set()

  hub, actor = _from_to("learner_0", "actor_0",
                        lambda learner: learner.fail(TrainingFailed("loss is nan at train step 7")),
                        tmp_path)
  assert isinstance(actor.error, TrainingFailed) and actor.stop.is_set()
  assert str(actor.error) == "loss is nan at train step 7"
  assert isinstance(hub.state.error, TrainingFailed)

  _, launcher = _from_to("actor_0", "launcher_0",
                         lambda actor: actor.fail(ReverieError("env.id: no such environment")),
                         tmp_path)
  assert isinstance(launcher.error, ReverieError)


def test_restarts_live_roles_and_placements(tmp_path):
  hub = RunHub(max_env_steps=100)
  assert hub.register("actor_0", "node-a", 11) == 0
  assert hub.register("actor_0", "node-b", 12) == 1
  assert hub.state.roles["actor_0"] == {"node": "node-b", "pid": 12, "restarts": 1}
  state, link = _linked(hub, "actor_0", tmp_path)
  link.sync_once()
  assert "actor_0" in hub.live_roles()
  link.close()
  assert "actor_0" not in hub.live_roles()
  assert state.roles["actor_0"]["pid"] == 12


def test_http_server_binds_where_told_and_serves_json(tmp_path):
  hub = RunHub(max_env_steps=1000)
  server = HubServer(hub, "127.0.0.1", 0)
  try:
    assert server.address.startswith("127.0.0.1:")
    assert http_register(server.address, "actor_0", "here", 1) == 0
    state, link = _linked(hub, "actor_0", tmp_path, sync=http_sync(server.address))
    link.start()
    state.add_env_steps(64, [3.0])
    link.close()
    assert hub.state.env_steps == 64 and hub.state.recent_returns == [3.0]
    # Anything but JSON is refused; nothing is unpickled.
    request = urllib.request.Request(f"http://{server.address}/sync", data=b"\x80\x04K\x01.")
    with pytest.raises(urllib.error.HTTPError) as refused:
      urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400
  finally:
    server.close()
  with pytest.raises(ReverieError, match="no coordinator answers there"):
    http_register(server.address, "actor_1", "here", 2, timeout=2)


def test_a_silent_coordinator_stops_the_role(tmp_path):
  def gone(report):
    raise ConnectionRefusedError("connection refused")
  state = RunState(max_env_steps=100)
  link = StateLink(state, gone, "actor_0", contract.RunDir(tmp_path), unreachable_seconds=0.5)
  link._thread = threading.Thread(target=link._loop, daemon=True)  # start() would sync first
  link._thread.start()
  assert state.stop.wait(10)
  assert isinstance(state.error, ReverieError)
  assert "coordinator has not answered" in str(state.error)
  link._done.set()
