"""The two ways a run can go wrong, each with its exit code."""


class ReverieError(Exception):
  """Bad input from the user: one line naming the thing and what to do; exit 2."""

  exit_code = 2


class TrainingFailed(Exception):
  """Training itself broke (e.g. a NaN loss); exit 1."""

  exit_code = 1
