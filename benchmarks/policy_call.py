"""Cost of one actor policy call (16 CartPole lanes): the TF path against the numpy path.

Both paths are `EpsilonGreedy` from agents/dqn/agent.py on the same Q-network;
the TF path is the one every non-MLP network takes, the numpy path the one
MLP Q-networks take (agents/numpy_mlp.py).

    python benchmarks/policy_call.py [--repeats 5] [--calls 2000] [--lanes 16]

Prints microseconds per call, the median over the repeats, and the ratio to
the TF path measured in the same invocation.
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from reverie.agents.dqn import agent as dqn_agent
from reverie.agents.dqn.config import DqnConfig


def _per_call_us(act, observation, calls: int) -> float:
  for _ in range(50):
    act(observation)
  started = time.perf_counter()
  for _ in range(calls):
    act(observation)
  return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--calls", type=int, default=2000)
  parser.add_argument("--lanes", type=int, default=16)
  parser.add_argument("--fc", type=int, nargs="+", default=[128, 128])
  args = parser.parse_args()
  obs_spec = tensor_spec.TensorSpec([4], tf.float32, "observation")
  action_spec = tensor_spec.BoundedTensorSpec([], tf.int64, 0, 1, "action")
  network = dqn_agent.make_q_network(DqnConfig(fc_layer_params=args.fc), obs_spec, action_spec)
  network.create_variables()
  numpy_path = dqn_agent.EpsilonGreedy(network, obs_spec, action_spec, seed=0)
  tf_path = dqn_agent.EpsilonGreedy(network, obs_spec, action_spec, seed=0, allow_numpy=False)
  observation = np.random.default_rng(0).normal(size=(args.lanes, 4)).astype(np.float32)
  np.testing.assert_array_equal(numpy_path.act(observation, 0.0), tf_path.act(observation, 0.0))
  results = {}
  for name, policy in [("tf function (baseline)", tf_path), ("numpy MLP", numpy_path)]:
    results[name] = [_per_call_us(lambda o, p=policy: p.act(o, 0.05), observation, args.calls)
                     for _ in range(args.repeats)]
  baseline = statistics.median(results["tf function (baseline)"])
  print(f"# policy call, {args.lanes} lanes, fc {args.fc}, median of {args.repeats} x "
        f"{args.calls} calls")
  print(f"{'path':<24} {'us/call':>8} {'min':>8} {'max':>8} {'ratio':>6}")
  for name, values in results.items():
    median = statistics.median(values)
    print(f"{name:<24} {median:>8.0f} {min(values):>8.0f} {max(values):>8.0f} "
          f"{median / baseline:>6.2f}")


if __name__ == "__main__":
  main()
