"""agents/optimizer.py: the legacy Adam the agents train with."""

import logging

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from reverie.agents import optimizer
from reverie.agents.ppo import agent as ppo_agent
from reverie.agents.ppo.config import PpoConfig


def test_create_slots_makes_the_moments_before_any_update():
  variables = [tf.Variable(tf.zeros([3, 2])), tf.Variable(tf.zeros([2]))]
  adam = optimizer.Adam(learning_rate=1e-3)
  optimizer.create_slots(adam, variables)
  for variable in variables:
    for slot in ("m", "v"):
      assert adam.get_slot(variable, slot).shape == variable.shape
  assert int(adam.iterations) == 0


def test_an_update_is_adams_and_clipnorm_clips_each_gradient():
  variable = tf.Variable([1.0, -2.0])
  adam = optimizer.Adam(learning_rate=0.1, clipnorm=1.0)
  adam.apply_gradients([(tf.constant([30.0, -40.0]), variable)])  # clipped to [0.6, -0.8]
  # First Adam step: m_hat / sqrt(v_hat) = sign(g) (up to epsilon), whatever the clip.
  np.testing.assert_allclose(variable.numpy(), [0.9, -1.9], rtol=1e-5)
  np.testing.assert_allclose(adam.get_slot(variable, "m").numpy(), [0.06, -0.08], rtol=1e-5)


def test_tf_agents_warning_about_non_tf2_optimizers_is_filtered(caplog):
  actions = tensor_spec.BoundedTensorSpec([], tf.int64, 0, 1, "action")
  observations = tensor_spec.TensorSpec([3], tf.float32, "observation")
  with caplog.at_level(logging.WARNING):
    ppo_agent.make_acting_agent(PpoConfig(), observations, actions)
  assert not [r for r in caplog.records if "well supported" in r.getMessage()], caplog.text


@pytest.mark.parametrize("anneal", [False, True])
def test_learning_rate_is_a_tensor_a_summary_can_take(anneal):
  rate = (tf.keras.optimizers.schedules.PolynomialDecay(1e-3, decay_steps=10)
          if anneal else 1e-3)
  adam = optimizer.Adam(learning_rate=rate)
  with tf.summary.create_noop_writer().as_default():
    assert tf.summary.scalar("learning_rate", adam.learning_rate, step=0) is not None
  assert float(adam.learning_rate) == pytest.approx(1e-3)
