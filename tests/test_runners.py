"""Runners: the Ray runner gives the local runner's numbers (issue 14), shards assemble
exactly, and the CLI flags choose the runner."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from facepriv_core.audit import AttackSpec, AuditSpec
from facepriv_core.audit import runner as audit_runner
from facepriv_core.cli import main
from facepriv_core.runners import get_runner
from facepriv_core.runners.merge import merge_attack_shards, shard_specs


def _spec(olivetti_path: Path, limit: int) -> AuditSpec:
    return AuditSpec(defence="pixelate", defence_params={"block": 8},
                     attacks=[AttackSpec(name="identity", params={"other_recognisers": False}),
                              AttackSpec(name="attribute")],
                     dataset=f"olivetti:{olivetti_path}", limit=limit, bootstrap=200)


def test_attack_shards_assemble_to_the_one_process_audit(olivetti_path: Path) -> None:
    """What the Ray runner relies on: per-attack audits merged = one audit, CIs included."""
    spec = _spec(olivetti_path, 12)
    faces = audit_runner.load_faces(spec)
    whole = audit_runner.run(spec, faces=faces)
    parts = [audit_runner.run(s, faces=faces) for s in shard_specs(spec)]
    assert len(parts) == 2
    merged = merge_attack_shards(spec, parts)
    assert merged.numbers() == whole.numbers()
    assert merged.summary()["overall_verdict"] == whole.summary()["overall_verdict"]


def test_unknown_runner_and_stray_ray_flags_are_usage_errors(capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    from facepriv_core.errors import UsageError

    with pytest.raises(UsageError, match="unknown runner"):
        get_runner("spark")
    code = main(["verify", "--dataset", "olivetti:nowhere", "--ray-address", "1.2.3.4:6379"])
    assert code == 2
    assert "--runner ray" in capsys.readouterr().err


def _audit_json(argv: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


@pytest.mark.ray
def test_ray_runner_audit_equals_local(olivetti_path: Path) -> None:
    """`facepriv audit ... --runner ray --limit 40 --json`: the attacks equal the local run's."""
    pytest.importorskip("ray")
    argv = ["audit", "--defence", "pixelate", "--set", "block=8", "--attack", "identity",
            "--attack", "attribute", "--dataset", f"olivetti:{olivetti_path}", "--limit", "40",
            "--json"]
    local = _audit_json(argv)
    remote = _audit_json([*argv, "--runner", "ray", "--ray-workers", "2"])
    assert remote["attacks"] == local["attacks"]
    assert remote["utility"] == local["utility"]
    assert remote["verdicts"] == local["verdicts"]
    import ray

    assert not ray.is_initialized()  # the runner shut its local cluster down


def test_unreachable_or_malformed_ray_address_fails_fast() -> None:
    """Ray's own client retries an address that does not answer for minutes: the runner probes
    it first and says what to do (a closed local port, refused at once)."""
    import socket
    import time

    pytest.importorskip("ray")
    from facepriv_core.runners.ray_runner import RayClusterError, probe_address

    with socket.socket() as s:  # a port that nothing listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.perf_counter()
    with pytest.raises(RayClusterError, match="cannot reach the Ray cluster"):
        probe_address(f"127.0.0.1:{port}", timeout=2.0)
    assert time.perf_counter() - t < 10
    with pytest.raises(RayClusterError, match="is not HOST:PORT"):
        probe_address("head-node")
    probe_address("auto")  # left to Ray
