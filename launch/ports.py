"""Port checks that run before anything listens."""

import errno
import socket

from reverie.launch.errors import ReverieError


def check_port_free(port: int, flag: str = "replay.port") -> None:
  """Fails with one line when `port` is taken, before Reverb would dump gRPC errors."""
  for family, address in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
    try:
      with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, port))
    except OSError as e:
      if e.errno == errno.EADDRINUSE:
        hint = "replay.port=null" if flag == "replay.port" else f"no {flag}"
        raise ReverieError(f"{flag}: port {port} is busy; free it or give {hint} to pick a "
                           "free one") from None
      if e.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
        raise ReverieError(f"{flag}: cannot listen on port {port} ({e.strerror})") from None


def check_ray_address(address: str, key: str) -> None:
  """Fails with one line when nothing listens at a Ray cluster's HOST:PORT.

  `ray.init(address=...)` retries an address where nothing listens for
  minutes; a TCP connect answers in a moment. `auto` and `ray://` addresses
  are left to Ray.
  """
  host, _, port = address.rpartition(":")
  if address == "auto" or "://" in address or not host or not port.isdigit():
    return
  try:
    socket.create_connection((host, int(port)), timeout=5).close()
  except OSError as e:
    raise ReverieError(f"{key} {address}: no Ray cluster answers there ({e.strerror or e}); "
                       "start one with `ray start --head`, or leave run.ray_address and "
                       "RAY_ADDRESS unset for a local cluster") from None

