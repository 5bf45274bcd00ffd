"""`facepriv verify`: face verification accuracy of a recogniser on a dataset, on clean faces
or (`--defence`) on the protected wire through the defence's authorised service."""

from __future__ import annotations

import argparse

from facepriv_core.cli._common import parse_sets, print_out
from facepriv_core.errors import UsageError


def cmd_verify(args: argparse.Namespace) -> int:
    from facepriv_core import datasets, models
    from facepriv_core.progress import terminal_progress
    from facepriv_core.verification import (
        embed_chips,
        public_params,
        verify_defence,
        verify_embeddings,
    )

    if args.set and not args.defence:
        raise UsageError("--set sets a defence parameter: give --defence NAME too")
    ds = datasets.load(args.dataset).limit(args.limit, seed=args.seed)
    aligned = datasets.align_dataset(ds, progress=terminal_progress("aligning"))
    device = models.resolve_device(args.device)
    model = models.get(args.model, device=args.device)
    identities = ds.identities[aligned.indices]
    head: dict[str, object] = {}
    if args.defence:
        from facepriv_core import defences

        defence = defences.get(args.defence, device=str(device))
        params = defence.Params(**parse_sets(args.set))
        result = verify_defence(aligned.chips, identities, defence, params, model,
                                pairs=args.pairs, folds=args.folds, seed=args.seed,
                                device=device, batch_size=args.batch_size,
                                progress=terminal_progress(f"protecting ({args.defence})"))
        head = {"defence": args.defence, "params": public_params(params)}
    else:
        emb = embed_chips(model, aligned.chips, device=device, batch_size=args.batch_size,
                          progress=terminal_progress("embedding"))
        pairs, same = datasets.make_pairs(identities, args.pairs, seed=args.seed)
        result = verify_embeddings(emb, pairs, same, folds=args.folds, seed=args.seed)
    out = {
        **result.as_dict(),
        **head,
        "model": args.model,
        "dataset": ds.name,
        "images": len(ds),
        "faces_used": len(aligned.indices),
        "faces_failed": len(aligned.failures),
    }
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
    v.add_argument("--limit", type=int, default=None, help="use at most N images")
    v.add_argument("--pairs", type=int, default=1500,
                   help="same-person pairs to sample (as many different ones); default 1500")
    v.add_argument("--folds", type=int, default=10, help="cross-validation folds (default 10)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    v.add_argument("--batch-size", type=int, default=32)
    v.add_argument("--json", action="store_true", help="print JSON")
    v.set_defaults(func=cmd_verify)
