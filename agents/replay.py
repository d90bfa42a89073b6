"""Reverb tables shared by every agent (experience tables, the variables table), and whole-step items."""

import itertools
import threading
from typing import Any, Callable, Optional, Sequence

import reverb
from reverb.cc import schema_pb2
import tensorflow as tf
import tree
from tf_agents.experimental.distributed import reverb_variable_container as rvc

_client_ids = itertools.count()
_client_lock = threading.Lock()


def uniform_table(name: str, signature: Any, max_items: int, min_items: int,
                  samples_per_insert: float, error_buffer_items: float,
                  priority_exponent: Optional[float] = None) -> reverb.Table:
  """An experience replay table: uniform sampling, FIFO removal, a sample/insert ratio.

  `SampleToInsertRatio` keeps learning and collection at the configured ratio
  whatever their speeds; `error_buffer_items` is how far either may run ahead.
  With `priority_exponent` (alpha), items are sampled with probability
  proportional to priority^alpha instead (prioritized replay).
  """
  limiter = reverb.rate_limiters.SampleToInsertRatio(
      samples_per_insert=samples_per_insert, min_size_to_sample=min_items,
      error_buffer=max(error_buffer_items, samples_per_insert + 1))
  sampler = reverb.selectors.Uniform() if priority_exponent is None else \
      reverb.selectors.Prioritized(priority_exponent)
  return reverb.Table(name, sampler=sampler, remover=reverb.selectors.Fifo(),
                      max_size=max_items, rate_limiter=limiter, signature=signature)


def tf_client(server_address: str) -> reverb.TFClient:
  """A TF Reverb client with a resource of its own, for graph ops and weight containers.

  A TF Reverb client made without a shared name is the resource of a cached
  eager kernel, shared by every client of the process; seen here, roles that
  made theirs in different threads at the same moment found it gone
  ("Resource localhost/_0_ReverbClient ... does not exist"). A unique shared
  name gives each client its own.
  """
  with _client_lock:
    name = f"reverie_tf_client_{next(_client_ids)}"
  return reverb.TFClient(server_address, shared_name=name)


def table_info(client: reverb.Client, table: str,
               timeout_seconds: Optional[int] = None) -> schema_pb2.TableInfo:
  """`client.server_info(timeout_seconds)[table]`, as Reverb's proto: its counters and sizes.

  Reverb's own `server_info` decodes every table's signature in Python on each
  call, holding the GIL: 779 us of CPU a call against 276 us without (a DQN
  CartPole server's two tables, Reverb 0.14, medians of 9 x 200 calls in one
  process). Actors look for new weights this way up to 20 times a second,
  beside their loop.
  """
  try:
    protos = client._client.ServerInfo(timeout_seconds or 0)  # pylint: disable=protected-access
  except RuntimeError as e:  # as Reverb's server_info says it
    if "Deadline Exceeded" in str(e) and timeout_seconds is not None:
      raise reverb.errors.DeadlineExceededError(
          f"ServerInfo call did not complete within {timeout_seconds} s") from None
    raise
  for proto in protos:
    info = schema_pb2.TableInfo.FromString(proto)
    if info.name == table:
      return info
  raise KeyError(f"no table {table!r} on the replay server")


def variables_table(name: str, variables: Any) -> reverb.Table:
  """Holds the newest policy weights (max_size 1), read by actors and evaluators."""
  signature = tf.nest.map_structure(lambda v: tf.TensorSpec(v.shape, v.dtype), variables)
  return reverb.Table(name, sampler=reverb.selectors.Uniform(), remover=reverb.selectors.Fifo(),
                      max_size=1, max_times_sampled=0,
                      rate_limiter=reverb.rate_limiters.MinSize(1), signature=signature)


def variable_container(server_address: str, table: str) -> rvc.ReverbVariableContainer:
  """TF-Agents' container for pushing and pulling weights, with a `tf_client` of its own."""
  container = rvc.ReverbVariableContainer(server_address, table_names=[table])
  container._tf_client = tf_client(server_address)  # pylint: disable=protected-access
  return container


def weight_pusher(server_address: str, table: str, variables: Any,
                  traced: bool = True) -> Callable[[], None]:
  """A function that pushes the current values of `variables` (a nest) into `table`.

  Traced, one push is one graph call: the variable reads, the insert's two
  constants and the insert op. TF-Agents' container pushes eagerly, each of
  those a dispatch of its own that takes the GIL back from the actor threads of
  a local run. With benchmarks/actor_throughput.py's pusher pushing either way
  every 1/30 s, the 64-lane actor ran 0.735 and 0.795 of env + policy against
  0.718 and 0.768 eagerly (two invocations of 10 rounds, medians), the 256-lane
  one 0.813 against 0.786 (8 rounds). A push took 321-387 us of the pushing
  thread's CPU against 677-804 us. `traced=False` keeps the eager container
  (under TPUStrategy, whose variables live on the TPU; not tried on one).
  """
  if not traced:
    container = variable_container(server_address, table)
    return lambda: container.push(variables)
  client = tf_client(server_address)
  flat = tf.nest.flatten(variables)

  @tf.function(autograph=False)
  def push():
    client.insert(data=flat, tables=tf.constant([table]),
                  priorities=tf.constant([1.0], dtype=tf.float64))

  return push


def write_item(writer: reverb.TrajectoryWriter, step: Any, tables: Sequence[str],
               priority: float = 1.0) -> None:
  """Appends `step` (a nest of arrays) to `writer` and makes it one whole item in each table.

  Goes to the C++ writer behind Reverb's Python TrajectoryWriter: for a step
  that is one whole item, the Python layer (flattening by path, a history of
  wrapped references rebuilt on every `history` read) is all cost. An item
  of DQN's six [4, 64] columns, n-step sums included, took an actor 114-130
  us through it and 77-97 us without it (Reverb 0.14, 64 lanes). The
  step's leaves, in dm-tree's order (Reverb's own for table signatures), are
  the item's columns. A writer given to this function must not also be given
  steps through its `append` (its history would not know them); `flush` and
  `close` are as usual.
  """
  cpp = writer._writer  # pylint: disable=protected-access
  try:
    refs = cpp.Append(tree.flatten(step))
  except ValueError as e:  # Reverb names the column by its index
    paths = ", ".join("/".join(map(str, path)) for path, _ in tree.flatten_with_path(step))
    raise ValueError(f"{e} (columns in order: {paths})") from None
  columns = [[ref] for ref in refs]
  squeeze = [True] * len(columns)  # each column is the one step, not a sequence of one
  for table in tables:
    cpp.CreateItem(table, priority, columns, squeeze)
