"""The range check every config schema uses: a ValueError that names the field first."""


def check(ok: bool, field: str, message: str) -> None:
  if not ok:
    raise ValueError(f"{field}: {message}")
