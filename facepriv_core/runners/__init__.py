"""Where audit work runs: in this process (`local`) or on a Ray cluster (`ray`), one API.

`get_runner("local" | "ray", address=None)` returns a Runner with `audit(spec)`,
`sweep(spec, param, values)` and `call(fn, *args)`. Both give the same numbers for the same
spec and seed: the Ray runner splits an audit into shards that the local runner would compute
identically (one shard per attack, or one per sweep point), runs them on workers that load
each model once, and assembles the rows with the same seeded statistics.
"""

from __future__ import annotations

from facepriv_core.runners.base import Runner
from facepriv_core.runners.local import LocalRunner

RUNNERS = ("local", "ray")


def get_runner(name: str = "local", address: str | None = None,
               workers: int | None = None) -> Runner:
    """The runner called `name`; `address` and `workers` are for Ray only."""
    from facepriv_core.errors import UsageError

    if name == "local":
        if address:
            raise UsageError("--ray-address is for --runner ray")
        return LocalRunner()
    if name == "ray":
        from facepriv_core.runners.ray_runner import RayRunner

        return RayRunner(address=address, workers=workers)
    raise UsageError(f"unknown runner {name!r}: use one of {', '.join(RUNNERS)}")


__all__ = ["RUNNERS", "LocalRunner", "Runner", "get_runner"]
