"""`python -m torch.distributed.run ... Testing/ddp_probe.py --probe-out DIR TRAIN-ARGS...`: runs
`python -m training.train TRAIN-ARGS...` in each process and records what that process did, for
Testing/test_training.py: the training-set indices it loaded, in order (``DIR/rank<R>_indices.json``),
and its network's final weights (``DIR/rank<R>_state.pt``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

import training.trainer as trainer
from training.train import main as train_main


def run(argv: list[str]) -> int:
    if argv[:1] != ["--probe-out"] or len(argv) < 2:
        raise SystemExit("usage: ddp_probe.py --probe-out DIR TRAIN-ARGS...")
    out, train_args = Path(argv[1]), argv[2:]
    rank = int(os.environ.get("RANK", "0"))
    seen: list[int] = []
    networks: list[torch.nn.Module] = []
    build_dataset, network_class = trainer.build_dataset, trainer.MultiTaskNet

    def recording_dataset(*args, **kwargs):
        dataset = build_dataset(*args, **kwargs)
        if kwargs.get("augment", args[3] if len(args) > 3 else False):      # the training set only
            plain = type(dataset).__getitem__

            def getitem(self, index):
                seen.append(int(index))
                return plain(self, index)

            dataset.__class__ = type("Recording" + type(dataset).__name__, (type(dataset),), {"__getitem__": getitem})
        return dataset

    class RecordingNet(network_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            networks.append(self)

    trainer.build_dataset, trainer.MultiTaskNet = recording_dataset, RecordingNet
    status = train_main(train_args)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}_indices.json").write_text(json.dumps(seen))
    torch.save({k: v.detach().cpu() for k, v in networks[0].state_dict().items()}, out / f"rank{rank}_state.pt")
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
