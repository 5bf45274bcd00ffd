"""Test servers on this machine only: a free loopback port, and waiting until one answers."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable

import pytest


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(url: str, what: str, tries: int = 120,
                       accept: Callable[[int, bytes], bool] = lambda status, _body: status == 200
                       ) -> None:
    """Poll `url` every 0.5 s until `accept(status, body)`; fail the test after `tries`."""
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url) as r:
                if accept(r.status, r.read()):
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{what} did not start within {tries * 0.5:.0f} s")
