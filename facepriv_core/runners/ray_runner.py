"""The Ray runner: shards of an audit on Ray workers that load each model once.

`ray.init()` starts a local cluster when no address is given (`num_cpus` = the workers asked
for, at most the machine's cores), else joins the cluster at `address`. Each worker is an
actor: the zoo caches models in its process, so a model loads once per worker however many
shards it runs. Workers ask for a GPU when the cluster has any. An audit is split into one
shard per attack (the whole audit for a keyed defence whose key is not reproducible: its
attacks must all see the same draw of the key), a sweep into one audit per point; faces are
aligned once here and shared through the object store. Progress is reported per finished
shard; cancel stops the pending shards and ends the workers' current ones. On a local
cluster the numbers equal the local runner's exactly; on other machines they may differ in
the last digits (other CPUs and thread counts sum in another order).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ray

from facepriv_core.cancel import Cancelled, cancelled
from facepriv_core.errors import FacePrivError
from facepriv_core.runners.base import Cancel, Progress, Runner
from facepriv_core.runners.merge import merge_attack_shards, shard_specs


class RayClusterError(FacePrivError):
    """The Ray cluster asked for cannot be reached."""


class RunCancelled(Cancelled):
    """A Ray run stopped because cancellation was requested."""


@ray.remote
class _Worker:
    """One worker process: runs audits and calls, keeping the zoo's model cache warm."""

    def __init__(self, threads: int | None) -> None:
        if threads:  # as many as the local runner uses, so float sums add in the same order
            import torch

            torch.set_num_threads(threads)

    def audit(self, spec: Any, faces: Any) -> tuple[Any, dict[str, Any]]:
        from facepriv_core.audit import runner

        result = runner.run(spec, faces=faces)
        return result, dict(result.images)

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        return fn(*args, **kwargs)


#: Seconds to wait for a cluster's head node to accept a connection (Ray itself retries for
#: minutes before giving up on an address that does not answer).
PROBE_TIMEOUT_S = 5.0


def probe_address(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast, with a RayClusterError, when `address` (HOST:PORT or ray://HOST:PORT) does
    not accept a TCP connection; 'auto' and other forms are left to Ray."""
    import socket

    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        if address.strip().lower() == "auto":
            return
        raise RayClusterError(f"--ray-address {address!r} is not HOST:PORT (or ray://HOST:PORT, "
                              "or 'auto'); give the head node's address or leave it out for a "
                              "local cluster")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise RayClusterError(f"cannot reach the Ray cluster at {address!r} within "
                              f"{timeout:.0f} s ({exc.strerror or exc}); check that its head "
                              "node is running and the address (HOST:PORT), or leave "
                              "--ray-address out for a local cluster") from None


def _package_root() -> str:
    """The folder holding facepriv_core, for the workers' PYTHONPATH."""
    import facepriv_core

    return str(Path(facepriv_core.__file__).resolve().parents[1])


class RayRunner(Runner):
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self._owns_ray = not ray.is_initialized()
        #: on a local cluster, workers use the local runner's torch thread count: Ray gives
        #: each 1, and a different count sums convolutions in a different order (last digits)
        self._threads: int | None = None
        if not address:
            import torch

            self._threads = torch.get_num_threads()
        if self._owns_ray:
            paths = [_package_root(), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
            options: dict[str, Any] = {
                "include_dashboard": False, "log_to_driver": False, "configure_logging": False,
                "runtime_env": {"env_vars": {"PYTHONPATH": ":".join(dict.fromkeys(paths))}},
            }
            if address:
                probe_address(address)
                try:
                    ray.init(address=address, **options)
                except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ...
                    raise RayClusterError(f"cannot join the Ray cluster at {address!r}: "
                                          f"{' '.join(str(exc).split())[:300]}; check the "
                                          "address (HOST:PORT of its head node) or leave "
                                          "--ray-address out for a local cluster") from None
            else:
                cpus = max(1, min(workers or 2, os.cpu_count() or 1))
                ray.init(num_cpus=cpus, **options)
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        default = self.gpus or max(1, int(resources.get("CPU", 1)))
        self.n_workers = max(1, workers or default)
        self._workers: list[Any] = []

    def _pool(self) -> list[Any]:
        if not self._workers:
            gpu = 1 if self.gpus >= self.n_workers else (self.gpus / self.n_workers
                                                         if self.gpus else 0)
            self._workers = [
                _Worker.options(num_cpus=1, num_gpus=gpu).remote(self._threads)  # type: ignore[attr-defined]
                for _ in range(self.n_workers)]
        return self._workers

    def _gather(self, refs: list[Any], stage: str, progress: Progress | None,
                cancel: Cancel | None) -> list[Any]:
        pending = list(refs)
        while pending:
            if cancelled(cancel):
                for ref in pending:
                    ray.cancel(ref)
                for worker in self._workers:
                    ray.kill(worker)
                self._workers = []
                raise RunCancelled(f"{stage} cancelled")
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            if progress:
                progress(stage, len(refs) - len(pending), len(refs))
        return ray.get(refs)

    def _faces(self, spec: Any, faces: Any, progress: Progress | None) -> Any:
        from facepriv_core.audit import runner

        return faces if faces is not None else runner.load_faces(spec, progress)

    def _needs_one_shard(self, spec: Any) -> bool:
        from facepriv_core import defences

        keyed = bool(getattr(defences.classes().get(spec.defence), "keyed", False))
        return keyed and not spec.reproducible_key

    def audit(self, spec: Any, progress: Progress | None = None, cancel: Cancel | None = None,
              faces: Any = None) -> Any:
        faces_ref = ray.put(self._faces(spec, faces, progress))
        specs = [spec] if self._needs_one_shard(spec) else shard_specs(spec)
        pool = self._pool()
        refs = [pool[i % len(pool)].audit.remote(s, faces_ref) for i, s in enumerate(specs)]
        parts = []
        for result, images in self._gather(refs, "ray shards", progress, cancel):
            result.images.clear()
            result.images.update(images)
            parts.append(result)
        return merge_attack_shards(spec, parts)

    def sweep(self, spec: Any, param: str, values: Sequence[Any],
              progress: Progress | None = None, cancel: Cancel | None = None,
              faces: Any = None, reference: bool = False) -> Any:
        from facepriv_core.audit.runner import SweepPoint, SweepResult, no_defence_spec

        faces_ref = ray.put(self._faces(spec, faces, None))
        pool = self._pool()
        specs = [spec.model_copy(update={"defence_params": {**spec.defence_params,
                                                            param: value}}) for value in values]
        labels: list[Any] = list(values)
        if reference:
            specs.append(no_defence_spec(spec))
            labels.append("no defence")
        refs = [pool[i % len(pool)].audit.remote(s, faces_ref) for i, s in enumerate(specs)]
        done = self._gather(refs, f"sweep {param}", progress, cancel)
        points = [SweepPoint.of(label, result) for label, (result, _) in zip(labels, done,
                                                                              strict=True)]
        ref = points.pop() if reference else None
        return SweepResult(defence=spec.defence, param=param, points=points, reference=ref)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        ref = self._pool()[0].call.remote(fn, args, kwargs)
        return self._gather([ref], getattr(fn, "__name__", "call"), None, None)[0]

    def close(self) -> None:
        for worker in self._workers:
            ray.kill(worker)
        self._workers = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
