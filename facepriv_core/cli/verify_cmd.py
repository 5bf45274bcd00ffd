"""`facepriv verify`: face verification accuracy of a recogniser on a dataset, on clean faces
or (`--defence`) on the protected wire through the defence's authorised service."""

from __future__ import annotations

import argparse
from typing import Any

from facepriv_core.cli._common import (
    COUNT_MAX,
    SEED_MAX,
    add_detector_flags,
    add_runner_flags,
    bounded_int,
    parse_sets,
    print_out,
    runner_from_args,
)
from facepriv_core.errors import UsageError


def verify_work(dataset: str, model_name: str, limit: int | None, seed: int, pairs: int,
                folds: int, device: str, batch_size: int, defence_name: str | None,
                sets: dict[str, str], show_progress: bool = True, detector: str = "hog",
                train: bool = True, reproducible_key: bool = False) -> dict[str, object]:
    """Everything `facepriv verify` computes, as one unit of work a runner can ship."""
    from facepriv_core import datasets, models
    from facepriv_core.progress import terminal_progress
    from facepriv_core.verification import (
        embed_chips,
        public_params,
        verify_defence,
        verify_embeddings,
    )

    def bar(stage: str) -> Any:
        return terminal_progress(stage) if show_progress else None

    ds = datasets.load(dataset).limit(limit, seed=seed)
    aligned = datasets.align_dataset(ds, progress=bar("aligning"), detector=detector)
    dev = models.resolve_device(device)
    model = models.get(model_name, device=device)
    identities = ds.identities[aligned.indices]
    head: dict[str, object] = {}
    if defence_name:
        from facepriv_core import defences

        defence = defences.get(defence_name, device=str(dev))
        params = defence.Params(**sets)
        result = verify_defence(aligned.chips, identities, defence, params, model,
                                pairs=pairs, folds=folds, seed=seed, device=dev,
                                batch_size=batch_size,
                                progress=bar(f"protecting ({defence_name})"),
                                prepare=train, prepare_progress=bar("training the service"),
                                reproducible_key=reproducible_key, dataset_name=ds.name)
        head = {"defence": defence_name, "params": public_params(params),
                "service_ready": defence.service_ready(params)}
    else:
        emb = embed_chips(model, aligned.chips, device=dev, batch_size=batch_size,
                          progress=bar("embedding"))
        pair_idx, same = datasets.make_pairs(identities, pairs, seed=seed)
        result = verify_embeddings(emb, pair_idx, same, folds=folds, seed=seed)
    return {
        **result.as_dict(),
        **head,
        "model": model_name,
        "dataset": ds.name,
        "images": len(ds),
        "faces_used": len(aligned.indices) - result.excluded_faces,
        "faces_failed": len(aligned.failures),
    }


def cmd_verify(args: argparse.Namespace) -> int:
    if (args.set or args.reproducible_key or args.no_train) and not args.defence:
        raise UsageError("--set, --no-train and --reproducible-key are about a defence: "
                         "give --defence NAME too")
    with runner_from_args(args) as runner:
        out = runner.call(verify_work, args.dataset, args.model, args.limit, args.seed,
                          args.pairs, args.folds, args.device, args.batch_size, args.defence,
                          parse_sets(args.set), show_progress=args.runner == "local",
                          detector=args.detector, train=not args.no_train,
                          reproducible_key=args.reproducible_key)
    print_out(out, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("verify", help="face verification accuracy of a recogniser on a dataset "
                                      "(clean, or through a defence's authorised service)")
    v.add_argument("--dataset", required=True,
                   help="olivetti:PATH, folder:PATH, aligned:PATH, sfhq:PATH or lfw")
    v.add_argument("--model", default="dlib-resnet", help="recognition model (default dlib-resnet)")
    v.add_argument("--defence", default=None,
                   help="protect every face with this defence and verify on what its "
                        "authorised service computes from the wire")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a defence parameter, repeatable (with --defence)")
    v.add_argument("--no-train", action="store_true",
                   help="with --defence: never train the defence's service here; one that is "
                        "not trained yet runs untrained (service_ready false)")
    v.add_argument("--reproducible-key", action="store_true",
                   help="with --defence: derive a keyed defence's client key from --seed "
                        "(reproducible, NOT secret); default: fresh from OS entropy")
    v.add_argument("--limit", type=bounded_int(1, COUNT_MAX), default=None,
                   help="use at most N images")
    add_detector_flags(v, face_index=False)
    v.add_argument("--pairs", type=bounded_int(1, COUNT_MAX), default=1500,
                   help="same-person pairs to sample (as many different ones); default 1500")
    v.add_argument("--folds", type=bounded_int(2, 100), default=10,
                   help="cross-validation folds (default 10)")
    v.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=0)
    v.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    v.add_argument("--batch-size", type=bounded_int(1, 4096), default=32)
    v.add_argument("--json", action="store_true", help="print JSON")
    add_runner_flags(v)
    v.set_defaults(func=cmd_verify)
