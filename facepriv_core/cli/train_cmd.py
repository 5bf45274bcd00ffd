"""`facepriv train ppfr_fd|facemix|san`: train the service-side model a defence needs.

Options are declared here and the trainers imported only when a training runs, so the rest of
the CLI starts without torch. Training runs on the best device present (GPU when there is one).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from facepriv_core.cli._common import COUNT_MAX, SEED_MAX, bounded_int
from facepriv_core.progress import terminal_progress


def learning_rate(text: str) -> float:
    """An argparse type: a learning rate in (0, 1], else a one-line usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"{text} is out of range (0, 1]")
    return value


def cmd_ppfr_fd(args: argparse.Namespace) -> int:
    """PPFR-FD's service: inverse-DCT layer + dlib-resnet fine-tuned by distillation, saved to
    --out or to the cache every later PPFR-FD run with these wire params finds by itself."""
    from facepriv_core.defences.ppfr_fd import PPFRParams
    from facepriv_core.defences.ppfr_fd_service import cache_path
    from facepriv_core.train.ppfr_fd_service import train_service

    params = PPFRParams(channels=args.channels, selection=args.selection,
                        drop_dc=not args.keep_dc, mix=not args.no_mix)
    bar = terminal_progress("training PPFR-FD service")
    given = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr}
    recipe: dict[str, Any] = {k: v for k, v in given.items() if v is not None}  # else default
    ckpt = train_service(args.data, params, val_images=args.val_images,
                         max_images=args.max_images, device=args.device, seed=args.seed,
                         out=args.out, progress=lambda step, total, loss: bar(step, total),
                         **recipe)
    summary = {k: v for k, v in ckpt.items() if k not in ("state_dict", "template_coef")}
    print(json.dumps({**summary, "out": str(args.out or cache_path(params))}, indent=2))
    return 0


def cmd_san(args: argparse.Namespace) -> int:
    from facepriv_core.train import train_san_autoencoder

    bar = terminal_progress("training SAN autoencoder")
    ckpt = train_san_autoencoder(
        args.data, args.out, epochs=args.epochs, max_images=args.max_images,
        val_images=args.val_images, batch_size=args.batch_size, lr=args.lr,
        pixel_weight=args.pixel_weight, gender_weight=args.gender_weight,
        matcher_weight=args.matcher_weight, width=args.width, device=args.device,
        seed=args.seed, progress=lambda step, total, loss: bar(step, total),
    )
    summary = {k: v for k, v in ckpt.items()
               if k not in ("state_dict", "config", "prototypes", "val_keys")}
    print(json.dumps({**summary, "out": args.out}, indent=2))
    return 0


def cmd_facemix(args: argparse.Namespace) -> int:
    """FaceMix: dlib's server part fine-tuned with mixing in the loop."""
    from facepriv_core.train.facemix_server import train_facemix_server

    bar = terminal_progress("training")
    result = train_facemix_server(
        args.data, args.out, stage=args.stage, group_size=args.group_size,
        coefficients=args.coefficients, cond_max=args.cond_max, steps=args.steps,
        groups_per_step=args.groups_per_step, lr=args.lr, heldout=args.heldout,
        seed=args.seed, device=args.device, progress=lambda s, t, _loss: bar(s, t),
        align_progress=terminal_progress("aligning"))
    print(f"held-out decryption cosine: {result.heldout_before:.4f} -> "
          f"{result.heldout_after:.4f} ({result.n_train} training faces); saved {result.path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train the service-side model a defence needs")
    tsub = t.add_subparsers(dest="defence", required=True)
    sub = tsub

    ppfr = sub.add_parser("ppfr_fd", help="PPFR-FD service: inverse DCT + fine-tuned dlib-resnet")
    ppfr.add_argument("--data", default=None,
                      help="faces of other people, e.g. sfhq:PATH (default: this machine's SFHQ)")
    ppfr.add_argument("--out", default=None,
                      help="checkpoint path (.pt); default: the cache PPFR-FD reads by itself")
    ppfr.add_argument("--steps", type=bounded_int(1, 100_000), default=None,
                      help="training steps (default: the recipe's, the one the cache holds)")
    ppfr.add_argument("--batch-size", type=bounded_int(2, 4096), default=None,
                      help="faces per step (default: the recipe's)")
    ppfr.add_argument("--lr", type=learning_rate, default=None,
                      help="peak learning rate in (0, 1] (default: the recipe's)")
    ppfr.add_argument("--max-images", type=bounded_int(1, COUNT_MAX), default=None)
    ppfr.add_argument("--val-images", type=bounded_int(1, COUNT_MAX), default=60)
    ppfr.add_argument("--channels", type=bounded_int(4, 64), default=36)
    ppfr.add_argument("--selection", default="zigzag_lowest",
                      choices=["zigzag_lowest", "zigzag_spread"])
    ppfr.add_argument("--keep-dc", action="store_true", help="wires that keep the DC channel")
    ppfr.add_argument("--no-mix", action="store_true", help="wires without channel mixing")
    ppfr.add_argument("--device", default=None, help="cpu, cuda, ... (default: best present)")
    ppfr.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=0)
    ppfr.set_defaults(func=cmd_ppfr_fd)

    facemix = sub.add_parser("facemix", help="dlib server part fine-tuned with mixing in the loop")
    p = facemix
    p.add_argument("--data", required=True, help="sfhq:PATH, folder:PATH, aligned:PATH, ...")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--stage", default="level4.0",
                   help="dlib-resnet stage the client sends (dlib_resnet.DEFAULT_SPLIT)")
    p.add_argument("--group-size", type=bounded_int(2, 16), default=4)
    p.add_argument("--coefficients", choices=["uniform", "gaussian"], default="uniform")
    p.add_argument("--cond-max", type=float, default=100.0)
    p.add_argument("--steps", type=bounded_int(1, 10_000_000), default=200)
    p.add_argument("--groups-per-step", type=bounded_int(1, 4096), default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--heldout", type=float, default=0.2)
    p.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best present)")
    facemix.set_defaults(func=cmd_facemix)

    san = sub.add_parser("san", help="SAN autoencoder: gender-prototype perturbation (ICB 2018)")
    san.add_argument("--data", required=True,
                     help="dataset spec, e.g. sfhq:PATH (weak gender labels from its manifest; "
                          "Cydral's prediction where a face has none)")
    san.add_argument("--out", required=True, help="checkpoint path (.pt)")
    san.add_argument("--epochs", type=bounded_int(1, 100_000), default=5)
    san.add_argument("--max-images", type=bounded_int(1, COUNT_MAX), default=None)
    san.add_argument("--val-images", type=bounded_int(1, COUNT_MAX), default=40)
    san.add_argument("--batch-size", type=bounded_int(1, 4096), default=16)
    san.add_argument("--lr", type=float, default=3e-3)
    san.add_argument("--pixel-weight", type=float, default=1000.0)
    san.add_argument("--gender-weight", type=float, default=1.0)
    san.add_argument("--matcher-weight", type=float, default=1.0)
    san.add_argument("--width", type=bounded_int(1, 1024), default=32,
                     help="channels of the autoencoder")
    san.add_argument("--device", default=None, help="cpu, cuda, ... (default: best present)")
    san.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=0)
    san.set_defaults(func=cmd_san)
