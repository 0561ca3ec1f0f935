"""The network's own blocks and sliding windows against the MONAI ones they replace: same parameter
names (saved models load unchanged), same random initialisation order, same outputs; and the
engine no longer imports MONAI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from MTLRadiomicsLib.model.blocks import DoubleConv, PoolDoubleConv, ResidualBlock, UpConcat
from MTLRadiomicsLib.mtv.sliding_window import sliding_window_mean

monai_blocks = pytest.importorskip("monai.networks.blocks")
basic_unet = pytest.importorskip("monai.networks.nets.basic_unet")

ROOT = Path(__file__).resolve().parents[1]
ACT = ("relu", {"inplace": True})
MONAI_NORM = {"instance": ("instance", {"affine": True}), "batch": "batch", None: None}


def _same(ours: torch.nn.Module, theirs: torch.nn.Module, *inputs: torch.Tensor) -> None:
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)              # the same seed gives the same initial weights
    for mode in (False, True):
        ours.train(mode)
        theirs.train(mode)
        with torch.no_grad():
            assert torch.equal(ours(*[x.clone() for x in inputs]), theirs(*[x.clone() for x in inputs]))


def _pair(make_ours, make_theirs):
    torch.manual_seed(3)
    ours = make_ours()
    torch.manual_seed(3)
    return ours, make_theirs()


@pytest.mark.parametrize("norm", ["instance", "batch", None])
def test_conv_levels_match_monai(norm):
    x = torch.rand(2, 3, 12, 10, 8)
    _same(*_pair(lambda: DoubleConv(3, 5, norm),
                 lambda: basic_unet.TwoConv(3, 3, 5, ACT, MONAI_NORM[norm], bias=True)), x)
    _same(*_pair(lambda: PoolDoubleConv(3, 6, norm),
                 lambda: basic_unet.Down(3, 3, 6, ACT, MONAI_NORM[norm], bias=True)), x)


@pytest.mark.parametrize("halves", [True, False])
def test_up_level_matches_monai_with_odd_sizes(halves):
    x, skip = torch.rand(1, 8, 3, 4, 3), torch.rand(1, 4, 7, 8, 6)     # 7 and 6: pad one voxel, 8: none
    _same(*_pair(lambda: UpConcat(8, 4, 4, "batch", halves=halves),
                 lambda: basic_unet.UpCat(3, 8, 4, 4, ACT, "batch", bias=True, halves=halves)), x, skip)


@pytest.mark.parametrize("stride,channels", [(1, 3), (1, 5), (2, 5)])
def test_residual_unit_matches_monai(stride, channels):
    x = torch.rand(2, 3, 8, 8, 8)
    _same(*_pair(lambda: ResidualBlock(3, channels, "batch", stride=stride),
                 lambda: monai_blocks.ResidualUnit(3, 3, channels, strides=stride, kernel_size=3, subunits=2,
                                                   act=ACT, norm="batch")), x)


@pytest.mark.parametrize("size,overlap", [((40, 37, 50), 0.5), ((40, 37, 50), 0.25), ((20, 16, 33), 0.5),
                                          ((16, 16, 16), 0.5), ((70, 16, 9), 0.25)])
def test_sliding_windows_match_monai(size, overlap):
    from monai.inferers import sliding_window_inference

    torch.manual_seed(0)
    x = torch.rand(1, 1, *size)
    conv = torch.nn.Conv3d(1, 2, 3, padding=1)
    calls = {"ours": 0}

    def predict(batch: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(conv(batch))

    def counted(batch: torch.Tensor) -> torch.Tensor:
        calls["ours"] += batch.shape[0]
        return predict(batch)

    with torch.no_grad():
        ours = sliding_window_mean(x, (16, 16, 16), counted, batch_size=4, overlap=overlap)
        theirs = sliding_window_inference(x, (16, 16, 16), 4, predict, overlap=overlap, mode="gaussian",
                                          padding_mode="constant", cval=0.0)
    assert ours.shape == theirs.shape == (1, 2, *size)
    assert torch.equal(ours, torch.as_tensor(theirs))
    assert calls["ours"] > 0


def test_engine_and_command_line_do_not_import_monai():
    code = ("import sys, MTLRadiomicsLib.analysis.engine, MTLRadiomicsLib.mtv.lesion; "
            "from MTLRadiomicsLib.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'monai', 'matplotlib', 'highdicom'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_parser_does_not_import_torch():
    code = "import sys; from MTLRadiomicsLib.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
