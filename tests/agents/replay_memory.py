"""Measures the memory a Reverb experience table takes per transition of real Atari frames.

Steps ALE/Pong-v5 (preprocessed as `dqn_atari`) with random actions and writes
what the DQN actor writes, through the same table and writer settings, into an
in-process Reverb server; the process's resident memory grows by what Reverb
keeps. Run as a script for a bigger measurement:

  .venv/bin/python tests/agents/replay_memory.py 100000
"""

import sys
import time

import numpy as np


def rss_bytes() -> int:
  """Resident memory of this process."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) * 1024
  raise RuntimeError("no VmRSS in /proc/self/status")


def measure(transitions: int, lanes: int = 8, seed: int = 0) -> dict:
  """Fills a table with `transitions` Pong transitions; returns bytes per transition and more."""
  import reverb  # pylint: disable=g-import-not-at-top
  from reverie.launch import config as config_lib  # pylint: disable=g-import-not-at-top
  from reverie.launch import contract  # pylint: disable=g-import-not-at-top
  from reverie.launch import replay_server  # pylint: disable=g-import-not-at-top
  from reverie.agents.dqn.writer import ReplayWriter  # pylint: disable=g-import-not-at-top
  from reverie.envs.registry import make_batched_env  # pylint: disable=g-import-not-at-top

  config = config_lib.load_config("dqn_atari", [f"replay.max_size={transitions}",
                                                f"actor.envs_per_actor={lanes}",
                                                "replay.min_size=1"]).config
  env = make_batched_env(config.env.id, lanes, env_config=config.env, training=True)
  tables = replay_server.make_tables(config, env.observation_spec, env.action_spec)
  table = tables[0]
  # The rate limiter would wait for samples: this table takes inserts freely.
  table = reverb.Table(table.name, sampler=reverb.selectors.Uniform(),
                       remover=reverb.selectors.Fifo(), max_size=table.info.max_size,
                       rate_limiter=reverb.rate_limiters.MinSize(1),
                       signature=table.info.signature)
  before = rss_bytes()
  server = reverb.Server([table])
  client = reverb.Client(f"localhost:{server.port}")
  writer = ReplayWriter(client, contract.EXPERIENCE_TABLE, env.observation_spec, env.action_spec,
                        env.reset(seed=seed), config.replay.steps_per_item,
                        config.agent.n_step_update, config.agent.gamma)
  rng = np.random.default_rng(seed)
  started = time.monotonic()
  while True:
    action = rng.integers(0, int(env.action_spec.maximum) + 1, lanes)
    writer.add(action, env.step(action))
    if writer.item_ready():
      writer.create_item()
      writer.writer.flush(block_until_num_items=8)
      if client.server_info()[contract.EXPERIENCE_TABLE].current_size * \
          writer.transitions_per_item >= transitions:
        break
  writer.writer.flush()
  writer.writer.close()
  env.close()
  env_seconds = time.monotonic() - started
  info = client.server_info()[contract.EXPERIENCE_TABLE]
  stored = info.current_size * writer.transitions_per_item
  grown = rss_bytes() - before
  server.stop()
  return {"transitions": stored, "rss_growth_bytes": grown,
          "bytes_per_transition": grown / stored, "seconds": env_seconds}


if __name__ == "__main__":
  print(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
