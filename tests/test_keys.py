"""Client keys: secret (OS entropy) by default, reproducible only when asked, never a seed in
any output."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facepriv_core import audit, defences, report
from facepriv_core.defences.keys import KeySource

ROOT = Path(__file__).resolve().parents[1]
KEYED = ("xnn", "facemix", "ppfr_fd")
SEED_WORDS = ("key_seed", "shuffle_seed", "shuffle1_seed")


def test_key_source_kinds() -> None:
    a, b = KeySource.secret(), KeySource.secret()
    assert a.generator("x").initial_seed() != b.generator("x").initial_seed()
    r1, r2 = KeySource.from_seed(5), KeySource.from_seed(5)
    assert r1.generator("x").initial_seed() == r2.generator("x").initial_seed()
    assert r1.generator("x").initial_seed() != r1.generator("y").initial_seed()
    assert r1.derive("face").generator("x").initial_seed() == \
        r2.derive("face").generator("x").initial_seed()
    # a stream continues across calls; a generator restarts
    s = KeySource.from_seed(1)
    first, second = torch.rand(3, generator=s.stream("m")), torch.rand(3, generator=s.stream("m"))
    assert not torch.equal(first, second)
    assert torch.equal(torch.rand(3, generator=s.generator("m")),
                       torch.rand(3, generator=s.generator("m")))
    assert repr(a) == "<KeySource secret>" and "not secret" in repr(r1)
    with pytest.raises(TypeError):
        pickle.dumps(a)
    with pytest.raises(AttributeError):
        a.reproducible = True  # type: ignore[misc]


@pytest.mark.parametrize("name", KEYED)
def test_keyed_defences_have_no_seed_parameter(name: str) -> None:
    d = defences.get(name)
    assert d.keyed
    assert not any("seed" in f for f in d.Params.model_fields)


def _protect_json(image: Path, *extra: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "facepriv_core", "protect", "--defence", "xnn", "--image",
         str(image), "--aligned", "--device", "cpu", "--json", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not any(w in proc.stdout + proc.stderr for w in SEED_WORDS)
    return json.loads(proc.stdout)


def test_protect_cli_keys_fresh_by_default_and_reproducible_on_request(sfhq_dir: Path) -> None:
    image = sfhq_dir / "sample_1x2_r0c0.jpg"
    a, b = _protect_json(image), _protect_json(image)
    assert a["key"]["secret"] and b["key"]["secret"]
    assert a["key"]["fingerprint"] != b["key"]["fingerprint"]
    r1, r2 = (_protect_json(image, "--reproducible-key", "--seed", "11") for _ in range(2))
    assert r1["key"]["fingerprint"] == r2["key"]["fingerprint"]
    assert r1["key"]["reproducible"] and "not secret" in r1["key"]["label"]
    assert r1["utility_cosine"] == r2["utility_cosine"]
    assert set(r1["params"]) == {"stage", "cond_max"}


@pytest.fixture(scope="module")
def olivetti_faces(olivetti_path: Path) -> audit.Faces:
    spec = audit.AuditSpec(defence="xnn", dataset=f"olivetti:{olivetti_path}", limit=4)
    return audit.load_faces(spec)


@pytest.mark.parametrize("name", ["xnn", "facemix"])
def test_audit_keys_secret_by_default_reproducible_on_request(
        name: str, olivetti_path: Path, olivetti_faces: audit.Faces) -> None:
    base = dict(defence=name, dataset=f"olivetti:{olivetti_path}", limit=4, bootstrap=0,
                seed=3, batch_size=2)
    secret = [audit.run(audit.AuditSpec(**base), faces=olivetti_faces) for _ in range(2)]
    assert all(r.key is not None and r.key.secret for r in secret)
    assert secret[0].key.fingerprint != secret[1].key.fingerprint  # type: ignore[union-attr]
    spec = audit.AuditSpec(**base, reproducible_key=True)
    rep = [audit.run(spec, faces=olivetti_faces) for _ in range(2)]
    assert rep[0].numbers() == rep[1].numbers()
    assert rep[0].key is not None and rep[0].key.reproducible
    assert "not secret" in rep[0].summary()["key"]["label"]
    for r in (*secret, *rep):
        text = r.model_dump_json() + json.dumps(r.summary())
        text += report.to_json([report.Section("audit", "audit", r.summary())], {})
        assert not any(w in text for w in SEED_WORDS)


def test_keyless_parts_repeat_under_secret_keys(olivetti_path: Path,
                                                olivetti_faces: audit.Faces) -> None:
    """PPFR-FD's Shuffle2 and the bootstrap follow the seed; only the key is fresh."""
    spec = audit.AuditSpec(defence="ppfr_fd", dataset=f"olivetti:{olivetti_path}", limit=4,
                           bootstrap=50, seed=1)
    a, b = (audit.run(spec, faces=olivetti_faces) for _ in range(2))
    assert a.key is not None and b.key is not None
    assert a.key.fingerprint != b.key.fingerprint
    assert a.utility["energy_dropped"] == b.utility["energy_dropped"]
    assert a.spec_hash == b.spec_hash
