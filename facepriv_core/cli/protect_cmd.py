"""`facepriv protect`: protect one face with a defence and measure it."""

from __future__ import annotations

import argparse

from facepriv_core.cli._common import (
    SEED_MAX,
    add_detector_flags,
    bounded_int,
    defence_params,
    existing_file,
    print_out,
    resolve_device,
)


def cmd_protect(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image

    from facepriv_core import defences, faces, metrics, models
    from facepriv_core.defences.keys import key_source

    device = resolve_device(args.device)
    image = faces.load_image(existing_file(args.image, "--image"))
    face = (faces.from_aligned(image) if args.aligned
            else faces.detect_and_align(image, method=args.detector, face_index=args.face_index))
    x = faces.chips_to_tensor(face.chip150, device)
    defence = defences.get(args.defence, device=str(device))
    params = defence_params(defence, args.set)
    rng = torch.Generator(device=device).manual_seed(args.seed)
    protected = defence.protect_keyed(x, params, rng, key_source(args.reproducible_key,
                                                                 args.seed))
    recogniser = models.get("dlib-resnet", device)
    with torch.no_grad():
        clean = recogniser.embed(x)
        authorised = protected.utility_embedding(recogniser)
    out: dict[str, object] = {
        "defence": args.defence,
        "params": params.model_dump(),
        **face.detection_summary(),
        "wire_kind": protected.wire_kind,
        "wire_shape": list(protected.wire_shape),
        "wire_bytes": protected.wire_bytes,
        "key_bytes": protected.key.nbytes if protected.key is not None else 0,
        "key": protected.key.describe() if protected.key is not None else None,
        "utility_cosine": float(metrics.cosine(authorised, clean)[0]),
        **{k: float(v) for k, v in protected.metrics.items()},
    }
    if protected.image is not None:
        shown = faces.tensor_to_chips(protected.image)[0]
        out["ssim"] = metrics.ssim(face.chip150, shown)
        psnr = metrics.psnr(face.chip150, shown)
        out["psnr"] = None if np.isinf(psnr) else psnr
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{args.defence}_preview.png"
        Image.fromarray(protected.preview[0]).save(path)
        out["preview"] = str(path)
    print_out(out, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("protect", help="protect one face with a defence and measure it")
    pr.add_argument("--defence", required=True, help="registered defence name")
    pr.add_argument("--image", required=True, help="a photo with a face (or an aligned crop)")
    pr.add_argument("--aligned", action="store_true", help="the image is an aligned crop")
    add_detector_flags(pr)
    pr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a defence parameter, repeatable")
    pr.add_argument("--out", default=None, help="folder for the preview PNG")
    pr.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=0,
                    help="seed of the keyless random draws (noise, Shuffle2); the key too "
                         "with --reproducible-key")
    pr.add_argument("--reproducible-key", action="store_true",
                    help="derive the client key from --seed: reproducible, NOT secret "
                         "(default: a fresh key from OS entropy every run)")
    pr.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.set_defaults(func=cmd_protect)
