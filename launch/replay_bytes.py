"""Bytes the replay server holds per transition, read from its newest Reverb checkpoint.

Reverb reports no memory figures, but a checkpoint holds exactly what the
server keeps: every chunk once (as the server keeps it: a ChunkData proto of
zstd-compressed tensors; the file wraps records in ZLIB) and every item with
the chunks it references. Summing the chunks the experience table's items
reference, each once, gives its bytes however items share chunks (pixel
replay, agents/dqn/frames.py); the variables table's weights are left out.

The records are parsed at the protobuf wire level (Reverb's Python package
ships no proto modules): PrioritizedItem field 2 is the table, field 8 the
FlatTrajectory (columns 1 -> chunk_slices 1 -> chunk_key 1); ChunkData field
1 is the chunk key.
"""

import pathlib
from typing import Dict, Iterator, Optional, Tuple

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def _varint(data: bytes, i: int) -> Tuple[int, int]:
  value = shift = 0
  while True:
    byte = data[i]
    i += 1
    value |= (byte & 0x7F) << shift
    shift += 7
    if byte < 0x80:
      return value, i


def _fields(data: bytes) -> Iterator[Tuple[int, object]]:
  """(field number, value) of a serialized message; bytes fields as bytes."""
  i = 0
  while i < len(data):
    key, i = _varint(data, i)
    number, wire = key >> 3, key & 7
    if wire == _VARINT:
      value, i = _varint(data, i)
    elif wire == _FIXED64:
      value, i = data[i:i + 8], i + 8
    elif wire == _FIXED32:
      value, i = data[i:i + 4], i + 4
    elif wire == _BYTES:
      length, i = _varint(data, i)
      value, i = data[i:i + length], i + length
    else:
      raise ValueError(f"unsupported protobuf wire type {wire}")
    yield number, value


def _records(path: pathlib.Path) -> Iterator[bytes]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for record in tf.data.TFRecordDataset(str(path), compression_type="ZLIB"):
    yield record.numpy()


def _item_chunk_keys(item: bytes, table: str) -> Optional[set]:
  fields = list(_fields(item))
  if not any(n == 2 and v == table.encode() for n, v in fields):
    return None
  keys = set()
  for number, trajectory in fields:
    if number != 8:
      continue
    for column_number, column in _fields(trajectory):
      if column_number != 1:
        continue
      for slice_number, chunk_slice in _fields(column):
        if slice_number == 1:
          keys.update(v for n, v in _fields(chunk_slice) if n == 1)
  return keys


def table_bytes(checkpoint: pathlib.Path, table: str) -> Dict[str, int]:
  """{'chunk_bytes', 'items'} of `table` in one checkpoint directory."""
  checkpoint = pathlib.Path(checkpoint)
  keys, items = set(), 0
  for item in _records(checkpoint / "items.tfrecord"):
    item_keys = _item_chunk_keys(item, table)
    if item_keys is not None:
      keys |= item_keys
      items += 1
  chunk_bytes = 0
  for chunk in _records(checkpoint / "chunks.tfrecord"):
    key = next(v for n, v in _fields(chunk) if n == 1)
    if key in keys:
      chunk_bytes += len(chunk)
  return {"chunk_bytes": chunk_bytes, "items": items}


def item_priorities(checkpoint: pathlib.Path, table: str) -> list:
  """The priorities of `table`'s items in one checkpoint directory (PrioritizedItem field 5)."""
  import struct  # pylint: disable=g-import-not-at-top
  priorities = []
  for item in _records(pathlib.Path(checkpoint) / "items.tfrecord"):
    fields = list(_fields(item))
    if any(n == 2 and v == table.encode() for n, v in fields):
      priorities += [struct.unpack("<d", v)[0] for n, v in fields if n == 5]
  return priorities
