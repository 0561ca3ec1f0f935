"""Train a model: ``python -m training.train --config training/configs/small.yaml --manifest M --out RUN``.

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m training.train ...`` (DDP; gloo on CPU).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import yaml


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML run configuration (training/configs/*.yaml)")
    parser.add_argument("--manifest", required=True, help="cohort manifest CSV (as `mtl-radiomics synth` writes)")
    parser.add_argument("--out", required=True, help="run folder (created)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--fold", type=int, help="validation fold (overrides training.val_fold)")
    parser.add_argument("--epochs", type=int, help="maximum epochs (overrides training.epochs)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any configuration value, e.g. --set loss.lam=0.5 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict]:
    overrides: dict[str, dict] = {}
    for item in args.set:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise SystemExit(f"--set needs SECTION.KEY=VALUE, not {item!r}")
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        overrides.setdefault(section, {})[name] = yaml.safe_load(value)
    if args.fold is not None:
        overrides.setdefault("training", {})["val_fold"] = args.fold
    if args.epochs is not None:
        overrides.setdefault("training", {})["epochs"] = args.epochs
    return overrides


def main(argv: Optional[Sequence[str]] = None) -> int:
    from MTLRadiomicsLib.errors import MTLRadiomicsError
    from training.manifest import ManifestError
    from training.run_config import RunConfig
    from training.trainer import train

    args = build_parser().parse_args(argv)
    try:
        config = RunConfig.from_yaml(args.config, overrides_from_args(args))
        result = train(config, args.manifest, args.out, resume=args.resume, device_name=args.device,
                       progress=not args.no_progress)
    except (ManifestError, MTLRadiomicsError, ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"training: error: {error}", file=sys.stderr)
        return 2
    if not result.final:          # not the main process of a distributed run
        return 0
    for split, metrics in result.final.items():
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if v is not None and not k.startswith("loss_"))
        print(f"{split}: {shown}")
    print(f"run folder: {result.out_dir} (best model in {result.out_dir / 'best'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
