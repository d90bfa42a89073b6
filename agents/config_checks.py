"""The range check every config schema uses: a ValueError that names the field first."""


def check(ok: bool, field: str, message: str) -> None:
  if not ok:
    raise ValueError(f"{field}: {message}")


def conv_layers_ok(conv_layer_params) -> bool:
  """Every entry is [filters, kernel, stride] with positive numbers."""
  return all(len(p) == 3 and all(int(v) > 0 for v in p) for p in conv_layer_params)
