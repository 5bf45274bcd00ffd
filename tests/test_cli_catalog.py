"""The newcomer's CLI: plugin listings, the data command, one entry point for training."""

from __future__ import annotations

import json

import pytest

from facepriv_core import data_sources, datasets
from facepriv_core.cli import build_parser, main
from facepriv_core.errors import UsageError


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_defences_json_lists_every_defence_with_typed_parameters(capsys) -> None:
    from facepriv_core import defences

    rows = _json(capsys, ["defences", "--json"])
    assert isinstance(rows, list)
    assert {r["name"] for r in rows} == set(defences.names())
    assert len(rows) >= 12
    pixelate = next(r for r in rows if r["name"] == "pixelate")
    block = next(p for p in pixelate["params"] if p["name"] == "block")
    assert block["type"] == "integer" and block["default"] is not None and block["bounds"]
    assert pixelate["wire_kind"] == "image"
    ppfr = next(r for r in rows if r["name"] == "ppfr_fd")
    assert ppfr["paper"] and "AAAI" in ppfr["paper"] and ppfr["wire_kind"] == "frequency"


def test_attacks_json_lists_every_attack_with_its_threat_model(capsys) -> None:
    from facepriv_core import attacks

    rows = _json(capsys, ["attacks", "--json"])
    assert {r["name"] for r in rows} == set(attacks.names())
    for row in rows:
        assert row["threat_model"] and row["applies_to"], row["name"]
        assert all({"name", "type", "default", "description"} <= set(p) for p in row["params"])


def test_human_listing_reads_as_a_table(capsys) -> None:
    assert main(["defences"]) == 0
    out = capsys.readouterr().out
    assert "pixelate:" in out and "parameters" in out and "block (integer" in out
    assert "{" not in out.split("\n")[0]  # no dict reprs


def test_data_list_finds_the_shared_data(capsys, olivetti_path) -> None:
    rows = _json(capsys, ["data", "list", "--json"])
    names = {r["name"]: r for r in rows}
    assert "olivetti" in names
    assert datasets.load(names["olivetti"]["spec"]).name == "olivetti"


def test_bare_dataset_names_resolve_to_what_the_machine_has(olivetti_path, sfhq_dir) -> None:
    assert len(datasets.load("olivetti")) == 400
    assert len(datasets.load("sfhq")) > 100
    assert data_sources.default_aux() == f"sfhq:{data_sources.find('sfhq').path}"


def test_facepriv_data_env_comes_first(tmp_path, monkeypatch, olivetti_path) -> None:
    import shutil

    (tmp_path / "olivetti").mkdir()
    shutil.copy(olivetti_path, tmp_path / "olivetti" / "olivettifaces.mat")
    monkeypatch.setenv(data_sources.ENV_DATA, str(tmp_path))
    found = data_sources.find("olivetti")
    assert found is not None and found.origin == data_sources.ENV_DATA
    assert found.path.startswith(str(tmp_path))


def test_missing_data_says_what_to_do(monkeypatch, tmp_path) -> None:
    from facepriv_core.attacks.decoder_inversion import resolve_aux

    monkeypatch.setattr(data_sources, "data_roots", lambda: [])
    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))
    with pytest.raises(datasets.DatasetError, match="facepriv data fetch olivetti"):
        datasets.load("olivetti")
    with pytest.raises(datasets.DatasetError, match="sfhq:PATH"):
        datasets.load("sfhq")
    with pytest.raises(UsageError, match="set `aux`"):
        resolve_aux("", "advface")
    assert resolve_aux("folder:/x", "advface") == "folder:/x"


def test_data_fetch_rejects_unknown_names_and_reports_network_errors(monkeypatch, tmp_path,
                                                                     capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["data", "fetch", "imagenet"])
    assert exc.value.code == 2

    def offline(**_kw: object) -> None:
        raise OSError("network is unreachable")

    import sklearn.datasets

    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(sklearn.datasets, "fetch_olivetti_faces", offline)
    assert main(["data", "fetch", "olivetti"]) == 2
    err = capsys.readouterr().err
    assert "could not download olivetti" in err and "Traceback" not in err


def test_training_is_a_facepriv_verb() -> None:
    p = build_parser()
    for defence in ("ppfr_fd", "facemix", "san"):
        args = p.parse_args(["train", defence, "--data", "sfhq:/d", "--out", "x.pt"])
        assert args.defence == defence and callable(args.func)


def test_app_model_statuses_follow_a_fetch(monkeypatch, tmp_path) -> None:
    """The sidebar's cached availability is keyed by the install marker: a fetch refreshes it."""
    from app import state
    from facepriv_core.models import npm_models

    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))
    before = state._installed_stamp()
    assert all(mtime is None for _name, mtime in before)
    marker = npm_models.package_dir("human-models") / npm_models.MARKER
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    assert state._installed_stamp() != before
