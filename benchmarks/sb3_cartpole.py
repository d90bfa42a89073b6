"""Stable-Baselines3 on CartPole-v1 with rl-zoo's hyperparameters, stopped when solved.

Runs in benchmarks/.venv-baselines (`make bench-baselines`), never in Reverie's
environment; benchmarks/time_to_solve_sb3.py starts it as a whole process:

    benchmarks/.venv-baselines/bin/python benchmarks/sb3_cartpole.py dqn --seed 0

The solve criterion is Reverie's evaluator's (launch/evaluator.py): every
`--eval-interval-steps` env steps, the deterministic policy plays 20 episodes
side by side (episode i seeded `--eval-seed` + i); when they average >= 475,
20 more episodes (seeds `--eval-seed` + 20 + i) must too, and then training
stops. Prints one JSON line per evaluation and a last line
{"result": ...} with the env steps and the wall-clock time (time.time()) of
the solving evaluation, or nulls.
"""

import argparse
import json
import time

import gymnasium
import numpy as np
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger

# rl-baselines3-zoo hyperparams/{dqn,ppo}.yml, CartPole-v1.
ZOO = {
    "dqn": {"n_envs": 1, "n_timesteps": 50_000, "kwargs": dict(
        learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
        gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
        exploration_fraction=0.16, exploration_final_eps=0.04,
        policy_kwargs=dict(net_arch=[256, 256]))},
    "ppo": {"n_envs": 8, "n_timesteps": 100_000, "kwargs": dict(
        n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
        learning_rate=lambda progress_remaining: progress_remaining * 0.001,
        clip_range=lambda progress_remaining: progress_remaining * 0.2)},
}


def run_episodes(env, model, seed: int) -> float:
  """Average return of one deterministic episode per lane; lane i is seeded seed + i."""
  lanes = env.num_envs
  observation, _ = env.reset(seed=seed)
  returns = np.zeros(lanes)
  running = np.ones(lanes, bool)
  while running.any():
    action, _ = model.predict(observation, deterministic=True)
    observation, reward, terminated, truncated, _ = env.step(action)
    returns += reward * running
    running &= ~(terminated | truncated)
  return float(returns.mean())


class SolveCallback(BaseCallback):
  """Evaluates every `interval_steps` env steps; stops training once solved and confirmed."""

  def __init__(self, interval_steps: int, episodes: int, seed: int, target: float):
    super().__init__()
    self._interval_steps, self._seed, self._target = interval_steps, seed, target
    self._episodes = episodes
    self._env = gymnasium.make_vec("CartPole-v1", num_envs=episodes)
    self._next_eval = interval_steps
    self.solved = None

  def _on_step(self) -> bool:
    if self.num_timesteps < self._next_eval:
      return True
    env_steps = self.num_timesteps
    avg_return = run_episodes(self._env, self.model, self._seed)
    record = {"env_steps": env_steps, "avg_return": avg_return, "time": time.time()}
    if avg_return >= self._target:
      record["confirm_avg_return"] = run_episodes(self._env, self.model,
                                                  self._seed + self._episodes)
    print(json.dumps(record), flush=True)
    if record.get("confirm_avg_return", -np.inf) >= self._target:
      self.solved = record
      return False
    self._next_eval = env_steps + self._interval_steps
    return True


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("algo", choices=sorted(ZOO))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--eval-interval-steps", type=int, required=True)
  parser.add_argument("--eval-episodes", type=int, default=20)
  parser.add_argument("--eval-seed", type=int, default=1_000_000)
  parser.add_argument("--target", type=float, default=475.0)
  parser.add_argument("--timesteps", type=int, help="default: rl-zoo's n_timesteps")
  args = parser.parse_args()
  torch.set_num_threads(1)
  zoo = ZOO[args.algo]
  env = make_vec_env("CartPole-v1", n_envs=zoo["n_envs"], seed=args.seed)
  algo = {"dqn": DQN, "ppo": PPO}[args.algo]
  model = algo("MlpPolicy", env, seed=args.seed, device="cpu", verbose=0, **zoo["kwargs"])
  # No outputs, as verbose=0 would have, but no empty SB3-<time> folder in /tmp per run either.
  model.set_logger(Logger(folder=None, output_formats=[]))
  callback = SolveCallback(args.eval_interval_steps, args.eval_episodes, args.eval_seed,
                           args.target)
  model.learn(total_timesteps=args.timesteps or zoo["n_timesteps"], callback=callback)
  solved = callback.solved or {}
  print(json.dumps({"result": {"env_steps": solved.get("env_steps"),
                               "time": solved.get("time"),
                               "total_env_steps": model.num_timesteps,
                               "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                               "sb3": __import__("stable_baselines3").__version__}}), flush=True)


if __name__ == "__main__":
  main()
