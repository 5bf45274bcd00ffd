"""The npm face models behind the zoo interface: they recognise, classify and take gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facepriv_core import models
from facepriv_core.faces import chips_to_tensor
from facepriv_core.models import human_specs
from facepriv_core.models.human_specs import RACE_LABEL_OF_SFHQ

RECOGNISERS = [n for n, s in human_specs.SPECS.items() if s.task == "recognition"]
ATTRIBUTES = [n for n, s in human_specs.SPECS.items() if s.task != "recognition"]


@pytest.fixture(scope="module")
def _fetched() -> None:
    """Skip a test that runs the models when the npm package is not fetched here."""
    reason = models.status("faceres").reason
    if reason:
        pytest.skip(reason)


needs_weights = pytest.mark.usefixtures("_fetched")


def test_every_entry_is_registered_with_a_card() -> None:
    for name in human_specs.SPECS:
        entry = models.entry(name)
        assert entry.card.is_file(), f"{name}: no model card at {entry.card}"
        assert "human-models" in entry.source


@needs_weights
@pytest.mark.parametrize("name", ATTRIBUTES)
def test_attribute_heads_give_distributions_over_their_labels(name: str, sfhq_faces) -> None:
    model = models.get(name)
    x = chips_to_tensor(sfhq_faces.chips(2))
    with torch.no_grad():
        p = model.probabilities(x)
    assert p.shape == (2, len(model.labels))
    torch.testing.assert_close(p.sum(dim=1), torch.ones(2), atol=1e-4, rtol=0)
    if model.task == "age":
        years = model.years(x)
        assert years.shape == (2,) and torch.all((years > 0) & (years < 100))


@needs_weights
@pytest.mark.parametrize("name", RECOGNISERS)
def test_recognisers_take_gradients_to_the_chip(name: str, sfhq_faces) -> None:
    model = models.get(name, gated=False)  # the graph's mechanics, whatever the gate says
    x = chips_to_tensor(sfhq_faces.chips(1)).requires_grad_(True)
    emb = model.embed(x)
    assert emb.ndim == 2 and emb.shape[0] == 1 and torch.isfinite(emb).all()
    emb.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@needs_weights
def test_faceres_identifies_olivetti_people(olivetti_path) -> None:
    """Leave-one-out rank-1 among 10 people x 4 photos: chance is about 0.1."""
    from facepriv_core import datasets, metrics
    from facepriv_core.verification import embed_chips

    ds = datasets.load_olivetti(olivetti_path)
    keep = np.flatnonzero((ds.identities < 10) & (np.arange(len(ds)) % 10 < 4))
    aligned = datasets.align_dataset(ds.subset(keep))
    ids = ds.identities[keep][aligned.indices]
    emb = embed_chips(models.get("faceres"), aligned.chips)
    hits = metrics.rank1_hits(emb, emb, ids, ids, exclude=np.eye(len(ids), dtype=bool))
    assert np.nanmean(hits) >= 0.9


@needs_weights
def test_gear_race_agrees_with_sfhq_ethnicity_rows(sfhq_faces, sfhq_rows) -> None:
    """The ethnicity grid's asian, african, indian and irish rows (weak labels)."""
    model = models.get("gear-race")
    chips, want = [], []
    for row in sfhq_rows:
        label = RACE_LABEL_OF_SFHQ.get(row["ethnicity"])
        if row["grid"] != "SFHQ_variability_ethnicity" or label in (None, "other"):
            continue
        face = sfhq_faces.face(row["file"])
        if face is not None:
            chips.append(face.chip150)
            want.append(label)
    with torch.no_grad():
        p = model.probabilities(chips_to_tensor(np.stack(chips)))
    got = [model.labels[i] for i in p.argmax(dim=1).tolist()]
    agree = np.mean([g == w for g, w in zip(got, want, strict=True)])
    assert len(want) >= 40 and agree >= 0.5, f"agreement {agree:.2f} on {len(want)} faces"
