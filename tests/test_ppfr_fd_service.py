"""PPFR-FD's authorised service: slot assignment, inverse-DCT layer, fine-tuned dlib-resnet."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from facepriv_core import datasets, defences, models
from facepriv_core.defences.keys import KeySource
from facepriv_core.defences.ppfr_fd import (
    PPFRParams,
    block_dct,
    mask_coefficients,
    shuffle2_permutations,
    to_grey112,
    wire_channels,
)
from facepriv_core.defences.ppfr_fd_service import (
    InverseDCT,
    SlotTemplates,
    canonical_wires,
    templates_for,
)
from facepriv_core.faces import chips_to_tensor
from facepriv_core.train.ppfr_fd_service import train_service
from facepriv_core.train.services import prepare_service
from facepriv_core.verification import verify_embeddings

PARAMS = PPFRParams()
#: Held-out Olivetti verification the trained service must reach: issue 17's 0.90. Measured
#: (people 20-39, the default 300-step service, 5 keys): 0.951 +- 0.004, so the bar is over
#: 10 std below the mean (mean - 3 std = 0.939); the pretrained network behind the same layer
#: scores 0.79, the old 60-step recipe 0.87.
SERVICE_BAR = 0.90
SHUFFLE1 = torch.randperm(35, generator=torch.Generator().manual_seed(11))


@pytest.fixture(scope="module")
def olivetti(olivetti_path: Path) -> tuple[torch.Tensor, np.ndarray]:
    ds = datasets.load(f"olivetti:{olivetti_path}")
    return chips_to_tensor(datasets.align_dataset(ds).chips), ds.identities


def test_slot_templates_put_shuffle2_back(olivetti: tuple[torch.Tensor, np.ndarray]) -> None:
    """Templates from 20 people put the channels of 20 others back in order, and the mixing's
    chain (neighbouring slots correlate) puts more right than the templates alone. Measured
    over 4 keys: 82-92 % right with templates alone, 93-98 % with the chain; a random order
    would get 1/34 = 3 %."""
    x, ids = olivetti
    coef = block_dct(to_grey112(x))
    templates = templates_for(coef[ids < 20], PARAMS, SHUFFLE1)
    test = coef[ids >= 20]
    perms = shuffle2_permutations(len(test), wire_channels(PARAMS),
                                  torch.Generator().manual_seed(1))
    wire = mask_coefficients(test, PARAMS, SHUFFLE1, perms)
    canon = canonical_wires(test, PARAMS, SHUFFLE1)

    def right(t: SlotTemplates) -> float:
        back = t.reorder(wire)
        return float(torch.isclose(back, canon, atol=1e-5).flatten(2).all(dim=2).float().mean())

    with_chain = right(templates)
    assert templates.adjacency > 0
    templates.adjacency = 0.0
    alone = right(templates)
    assert alone >= 0.75, alone
    assert with_chain >= 0.88 and with_chain >= alone + 0.04, (with_chain, alone)


def test_inverse_dct_rebuilds_an_identifiable_face(
        olivetti: tuple[torch.Tensor, np.ndarray]) -> None:
    """In slot order and with Shuffle1, the rebuilt high-pass face already verifies with the
    pretrained network (measured 0.79 on 20 people); channels in a wrong order do not."""
    x, ids = olivetti
    keep = ids >= 30
    coef = block_dct(to_grey112(x[keep]))
    canon = canonical_wires(coef, PARAMS, SHUFFLE1)
    rebuild = InverseDCT(PARAMS)
    net = models.get("dlib-resnet")
    pairs, same = datasets.make_pairs(ids[keep], 1500, seed=0)
    torch.set_num_threads(2)
    with torch.no_grad():
        right = net(rebuild(canon, SHUFFLE1)).numpy()
        wrong = net(rebuild(canon, torch.randperm(35, generator=torch.Generator().manual_seed(3))
                            )).numpy()
    acc_right = verify_embeddings(right, pairs, same).accuracy
    acc_wrong = verify_embeddings(wrong, pairs, same).accuracy
    assert acc_right >= 0.70, acc_right
    assert acc_right >= acc_wrong + 0.05, (acc_right, acc_wrong)


def test_training_checkpoint_cache_and_cancel(sfhq_faces, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two steps on a few faces: saved to the cache the defence finds by itself, labelled as
    trained, usable for any key; cancel stops after one step and saves nothing."""
    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))
    chips = sfhq_faces.chips(24)
    defence = defences.get("ppfr_fd")
    assert not defence.service_ready(PARAMS)
    stop = threading.Event()
    seen: list[tuple[int, int, float]] = []

    def progress(step: int, total: int, loss: float) -> None:
        seen.append((step, total, loss))
        stop.set()

    ckpt = train_service(chips, PARAMS, steps=3, batch_size=4, val_images=8, device="cpu",
                         olivetti_people=0,
                         progress=progress, cancel=stop)
    assert ckpt["cancelled"] and ckpt["steps"] == 1 and seen[0][:2] == (1, 3)
    assert np.isfinite(seen[0][2]) and not defence.service_ready(PARAMS)

    ckpt = train_service(chips, PARAMS, steps=2, batch_size=4, val_images=8, device="cpu",
                         olivetti_people=0)
    assert not ckpt["cancelled"] and ckpt["train_images"] == 16 and ckpt["val_images"] == 8
    assert set(ckpt["defence_params"]) == {"channels", "selection", "drop_dc", "mix"}
    assert defence.service_ready(PARAMS) and not defence.service_ready(PPFRParams(mix=False))
    x = chips_to_tensor(chips[:3])
    for seed in (1, 2):  # two keys, one service
        p = defence.protect(x, PARAMS, torch.Generator().manual_seed(0),
                            key=KeySource.from_seed(seed))
        assert p.metrics["adapter_trained"] == 1.0 and p.metrics["adapter_train_images"] == 16
        assert "fine-tuned" in p.utility_model and "untrained" not in p.utility_model.lower()
        emb = p.utility_embedding(models.get("dlib-resnet"))
        assert emb.shape == (3, 128) and torch.isfinite(emb).all()

    out = tmp_path / "elsewhere.pt"
    train_service(chips, PARAMS, steps=1, batch_size=4, val_images=8, device="cpu", out=out,
                  olivetti_people=0)
    with pytest.raises(ValueError, match="trained for PPFR-FD params"):
        defence.protect(x, PPFRParams(mix=False, adapter_path=str(out)),
                        torch.Generator().manual_seed(0))


@pytest.mark.slow
def test_trained_service_recognises_held_out_people_and_whitebox_still_fails(
        olivetti_path: Path, sfhq_dir: Path) -> None:
    """Issue 17's bar, on the service trained on first use (cached after): verification on
    the Olivetti people it never saw, and the white-box recovery on the same wire."""
    from facepriv_core import attacks
    from facepriv_core.attacks import AttackCase
    from facepriv_core.verification import verify_defence

    torch.set_num_threads(2)
    defence = defences.get("ppfr_fd")
    prepare_service(defence, PARAMS)
    ds = datasets.load(f"olivetti:{olivetti_path}")
    aligned = datasets.align_dataset(ds)
    net = models.get("dlib-resnet")
    result = verify_defence(aligned.chips, ds.identities, defence, PARAMS, net,
                            dataset_name=ds.name)
    print(f"PPFR-FD service on held-out Olivetti people: {result.accuracy:.3f} "
          f"({result.excluded_faces} faces of trained people left out)")
    assert result.excluded_faces == 10 * len(defence.service_seen(PARAMS).get("olivetti", []))
    assert result.accuracy >= SERVICE_BAR, result

    seen = defence.service_seen(PARAMS).get("olivetti", [])
    keep = np.flatnonzero(~np.isin(ds.identities, seen))[::10][:12]
    x = chips_to_tensor(aligned.chips[keep])
    protected = defence.protect(x, PARAMS, torch.Generator().manual_seed(0),
                                key=KeySource.from_seed(5))
    assert protected.metrics["adapter_trained"] == 1.0
    attack = attacks.get("ppfr_fd_whitebox")
    case = AttackCase(original=x, protected=protected, defence=defence, defence_params=PARAMS)
    res = attack.run(case, attack.Params(aux=f"sfhq:{sfhq_dir}", aux_limit=100))
    base = res.details["baseline_mean_face"]
    print(f"white-box SSIM {res.aggregates['ssim']:.3f} vs mean face {base['ssim']:.3f}")
    assert res.aggregates["ssim"] < base["ssim"]
