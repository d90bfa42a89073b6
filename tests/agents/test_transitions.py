"""n-step transitions: returns, bootstrapping and the reset boundary."""

import numpy as np
import pytest
import tensorflow as tf

from reverie.agents.dqn.transitions import COLUMNS, ITEM_COLUMNS, NStepAccumulator, NStepBlocks
from reverie.agents.dqn.transitions import item_signature, make_item, to_transition
from reverie.agents.dqn.transitions import transitions_per_item, unpack
from reverie.envs.batched import BatchStep

GAMMA = 0.9


def step(obs, reward, terminated=False, truncated=False, started=False):
  """A one-lane BatchStep; observations are a scalar feature."""
  return BatchStep(np.array([[obs]], np.float32), np.array([reward], np.float32),
                   np.array([terminated]), np.array([truncated]), np.array([started]))


def collect(n_step, steps, first_obs=0.0):
  acc = NStepAccumulator(1, n_step, GAMMA, np.array([[first_obs]], np.float32))
  items = [acc.add(np.array([i]), s) for i, s in enumerate(steps)]
  return [{k: v[0] for k, v in item.items()} for item in items if item["valid"][0]]


def test_one_step_transitions_follow_the_env():
  got = collect(1, [step(1, 1.0), step(2, 2.0), step(3, 3.0)])
  assert [(t["observation"][0], t["action"], t["reward"], t["next_observation"][0])
          for t in got] == [(0, 0, 1, 1), (1, 1, 2, 2), (2, 2, 3, 3)]
  assert all(t["discount"] == 1.0 for t in got)


def test_three_step_return_and_bootstrap_discount():
  got = collect(3, [step(1, 1.0), step(2, 2.0), step(3, 4.0), step(4, 8.0)])
  assert len(got) == 2
  np.testing.assert_allclose(got[0]["reward"], 1 + GAMMA * 2 + GAMMA**2 * 4)
  np.testing.assert_allclose(got[0]["discount"], GAMMA**2)
  assert got[0]["next_observation"][0] == 3
  np.testing.assert_allclose(got[1]["reward"], 2 + GAMMA * 4 + GAMMA**2 * 8)


def test_termination_stops_the_return_and_the_bootstrap():
  # Episode: o0 -> o1 (r=1) -> o2 terminal (r=1); then the reset step brings o0'=10.
  got = collect(3, [step(1, 1.0), step(2, 1.0, terminated=True), step(10, 0.0, started=True),
                    step(11, 5.0), step(12, 5.0), step(13, 5.0)])
  first, second = got[0], got[1]
  np.testing.assert_allclose(first["reward"], 1 + GAMMA)     # nothing from the next episode
  assert first["discount"] == 0.0 and first["next_observation"][0] == 2
  np.testing.assert_allclose(second["reward"], 1.0)
  assert second["discount"] == 0.0 and second["observation"][0] == 1
  # No transition starts at the terminal observation (the reset step carries none).
  assert all(t["observation"][0] != 2 for t in got)
  third = got[2]
  assert third["observation"][0] == 10 and third["next_observation"][0] == 13


def test_truncation_bootstraps_from_the_last_observation():
  got = collect(2, [step(1, 1.0), step(2, 1.0, truncated=True), step(10, 0.0, started=True),
                    step(11, 1.0), step(12, 1.0)])
  np.testing.assert_allclose(got[1]["reward"], 1.0)
  np.testing.assert_allclose(got[1]["discount"], 1.0)  # gamma^(m-1), m = 1 step
  assert got[1]["next_observation"][0] == 2


def test_lanes_are_independent():
  acc = NStepAccumulator(2, 1, GAMMA, np.zeros((2, 1), np.float32))
  item = acc.add(np.array([0, 1]), BatchStep(
      np.array([[1], [5]], np.float32), np.array([1, 2], np.float32),
      np.array([False, True]), np.array([False, False]), np.array([False, False])))
  assert item["valid"].tolist() == [True, True]
  assert item["discount"].tolist() == [1.0, 0.0]
  item = acc.add(np.array([0, 1]), BatchStep(
      np.array([[2], [0]], np.float32), np.array([1, 0], np.float32),
      np.array([False, False]), np.array([False, False]), np.array([False, True])))
  assert item["valid"].tolist() == [True, False]


def test_invalid_lanes_become_masked_last_steps():
  item = {"observation": tf.zeros([2, 4]), "next_observation": tf.ones([2, 4]),
          "action": tf.constant([0, 1], tf.int64), "reward": tf.constant([1.0, 2.0]),
          "discount": tf.constant([1.0, 0.0]), "valid": tf.constant([True, False])}
  transition = to_transition(item)
  assert transition.time_step.observation.shape == (2, 4)
  assert transition.time_step.step_type.numpy().tolist() == [1, 2]  # MID, LAST (masked by DqnAgent)
  assert transition.next_time_step.observation.numpy().tolist() == [[1.0] * 4] * 2
  assert transition.next_time_step.reward.numpy().tolist() == [1.0, 2.0]
  assert transition.next_time_step.discount.numpy().tolist() == [1.0, 0.0]



def test_dqn_loss_on_a_transition_equals_its_loss_on_the_two_step_trajectory():
  """The learner feeds Transitions; TF-Agents' path from a [B, 2] Trajectory gives the same loss."""
  from tf_agents.specs import array_spec, tensor_spec  # pylint: disable=g-import-not-at-top
  from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
  from tf_agents.trajectories import trajectory  # pylint: disable=g-import-not-at-top
  from reverie.agents.dqn import agent as dqn_agent  # pylint: disable=g-import-not-at-top
  from reverie.agents.dqn.config import DqnConfig  # pylint: disable=g-import-not-at-top
  observation_spec = array_spec.ArraySpec((4,), np.float32)
  action_spec = tensor_spec.from_spec(array_spec.BoundedArraySpec((), np.int64, 0, 1))
  time_step_spec = tensor_spec.from_spec(ts.time_step_spec(observation_spec))
  for double_dqn in (False, True):
    agent, _ = dqn_agent.make_agent(DqnConfig(fc_layer_params=[8], double_dqn=double_dqn),
                                    time_step_spec, action_spec, tf.Variable(0, dtype=tf.int64))
    rng = np.random.default_rng(1)
    batch = 16
    item = {"observation": tf.constant(rng.normal(size=(batch, 4)), tf.float32),
            "next_observation": tf.constant(rng.normal(size=(batch, 4)), tf.float32),
            "action": tf.constant(rng.integers(0, 2, batch), tf.int64),
            "reward": tf.constant(rng.normal(size=batch), tf.float32),
            "discount": tf.constant(rng.choice([0.0, 0.97], batch), tf.float32),
            "valid": tf.constant(rng.random(batch) < 0.8)}
    mid = tf.fill([batch], ts.StepType.MID)
    stack = lambda first, second: tf.stack([first, second], axis=1)
    two_steps = trajectory.Trajectory(  # the [B, 2] trajectory the learner fed before
        step_type=stack(tf.where(item["valid"], ts.StepType.MID, ts.StepType.LAST), mid),
        observation=stack(item["observation"], item["next_observation"]),
        action=stack(item["action"], item["action"]), policy_info=(),
        next_step_type=stack(mid, mid),
        reward=stack(item["reward"], tf.zeros_like(item["reward"])),
        discount=stack(item["discount"], tf.ones_like(item["discount"])))
    ours = agent._loss(to_transition(item))  # pylint: disable=protected-access
    theirs = agent._loss(two_steps)  # pylint: disable=protected-access
    np.testing.assert_allclose(ours.loss.numpy(), theirs.loss.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.extra.td_error.numpy(), theirs.extra.td_error.numpy(),
                               rtol=1e-6)
    assert np.count_nonzero(ours.extra.td_error.numpy()) == np.count_nonzero(item["valid"].numpy())

def _random_steps(rng, lanes, steps, action_shape=()):
  """(action, BatchStep) pairs with frequent ends, each end followed by a reset step."""
  done = np.zeros(lanes, bool)
  for _ in range(steps):
    terminated, truncated = rng.random(lanes) < 0.15, rng.random(lanes) < 0.05
    batch = BatchStep(rng.normal(size=(lanes, 2)).astype(np.float32),
                      rng.normal(size=lanes).astype(np.float32), terminated, truncated, done)
    done = terminated | truncated
    yield rng.integers(0, 2, (lanes, *action_shape)), batch


@pytest.mark.parametrize("n_step", [1, 3, 5])
@pytest.mark.parametrize("blocks_per_shift", [1, 3, 8])
def test_items_of_k_rows_unpack_to_the_step_by_step_rows(n_step, blocks_per_shift):
  lanes, k_rows = 5, 4  # 25 blocks: the buffers' last rows move back several times
  rng = np.random.default_rng(0)
  first = rng.normal(size=(lanes, 2)).astype(np.float32)
  reference = NStepAccumulator(lanes, n_step, GAMMA, first)
  blocks = NStepBlocks(lanes, n_step, first, (), k_rows, blocks_per_shift)
  action_spec = tf.TensorSpec([], tf.int64)
  rows, items = [], 0
  for action, batch in _random_steps(rng, lanes, 100):
    rows.append(reference.add(action, batch))
    blocks.add(action, batch)
    if blocks.size == k_rows:
      item = blocks.take()
      assert item["observations"].shape == (k_rows + n_step, lanes, 2)
      assert item["rows"].shape == (k_rows + n_step - 1, 5, lanes)
      got = unpack({k: tf.constant(v) for k, v in item.items()}, action_spec, n_step, GAMMA)
      assert got.keys() == set(COLUMNS)
      for key in COLUMNS:
        expected = np.stack([row[key] for row in rows[-k_rows:]])
        assert got[key].dtype == expected.dtype, key
        np.testing.assert_array_equal(got[key].numpy(), expected, err_msg=f"{items} {key}")
      items += 1
  assert items == 25


def test_batched_items_with_vector_actions_unpack_as_each_alone():
  """The learner sums items batched before their own axes; actions of shape [1] included."""
  lanes, k_rows, n_step = 3, 4, 3
  rng = np.random.default_rng(1)
  first = rng.normal(size=(lanes, 2)).astype(np.float32)
  reference = NStepAccumulator(lanes, n_step, GAMMA, first)
  blocks = NStepBlocks(lanes, n_step, first, (1,), k_rows)
  items, expected = [], []
  for action, batch in _random_steps(rng, lanes, 6 * k_rows, action_shape=(1,)):
    expected.append(reference.add(action, batch))
    blocks.add(action, batch)
    if blocks.size == k_rows:
      items.append({k: v.copy() for k, v in blocks.take().items()})
  batched = {k: tf.constant(np.stack([item[k] for item in items])) for k in ITEM_COLUMNS}
  got = unpack(batched, tf.TensorSpec([1], tf.int32), n_step, GAMMA)
  for key in COLUMNS:
    want = np.stack([row[key] for row in expected]).reshape(got[key].shape)
    if key == "action":
      want = want.astype(np.int32)
    assert got[key].dtype == want.dtype, key
    np.testing.assert_array_equal(got[key].numpy(), want, err_msg=key)


def test_make_item_lays_out_fields_as_the_actor_does():
  lanes, k_rows, n_step = 3, 2, 2
  rng = np.random.default_rng(2)
  first = rng.normal(size=(lanes, 2)).astype(np.float32)
  blocks = NStepBlocks(lanes, n_step, first, (), k_rows, blocks_per_shift=2)
  steps = list(_random_steps(rng, lanes, 5 * k_rows))
  for action, batch in steps:
    blocks.add(action, batch)
    if blocks.size == k_rows:
      item = blocks.take()
  window = steps[-(k_rows + n_step - 1):]  # the last item's steps
  field = lambda name: np.stack([getattr(b, name) for _, b in window])
  made = make_item(np.concatenate([[window[0][1].observation * 0], field("observation")]),
                   np.stack([a for a, _ in window]), reward=field("reward"),
                   ended=field("ended"), terminated=field("terminated"),
                   started=field("started"))
  np.testing.assert_array_equal(made["rows"], item["rows"])
  assert made["rows"].dtype == np.float32
  # The first observation is the step's before the window's first, which the test didn't keep.
  np.testing.assert_array_equal(made["observations"][1:], item["observations"][1:])


def test_items_need_integer_actions_exact_in_float32():
  observation = tf.TensorSpec([4], tf.float32)
  with pytest.raises(ValueError, match="integer actions below 2"):
    item_signature(observation, tf.TensorSpec([], tf.float32), 8, 4, 3)
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  signature = item_signature(observation, tensor_spec.BoundedTensorSpec([], tf.int64, 0, 1), 8,
                             4, 3)
  assert signature["rows"].shape == (6, 5, 8)
  assert signature["observations"].shape == (7, 8, 4)
  assert transitions_per_item(signature, 3) == 32
