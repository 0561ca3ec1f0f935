"""The out-of-memory fallback: when the GPU runs out of memory the work is done again on the CPU, the
model moved there, and the result says so. CUDA is simulated: the stages raise PyTorch's
OutOfMemoryError whenever they are handed a CUDA device."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from MTLRadiomicsLib.analysis import engine
from MTLRadiomicsLib.analysis.devices import is_out_of_memory
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

CUDA, CPU = torch.device("cuda"), torch.device("cpu")
FALLBACK_WARNING = "the GPU ran out of memory; the analysis ran on the CPU"


class Network(torch.nn.Module):
    """Records where it is moved to (a CUDA move is only recorded: there may be no GPU)."""

    def __init__(self):
        super().__init__()
        self.moves: list[str] = []

    def to(self, device, *args, **kwargs):
        self.moves.append(torch.device(device).type)
        return self


class Loaded:
    def __init__(self):
        self.network = Network()


def oom() -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture()
def no_cache(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
    return calls


def test_out_of_memory_on_the_gpu_runs_again_on_the_cpu(no_cache):
    loaded, warnings, seen = Loaded(), [], []

    def work(device):
        seen.append(device.type)
        if device.type == "cuda":
            raise oom()
        return "done on the CPU"

    assert engine._on_device(loaded, CUDA, warnings, work) == ("done on the CPU", CPU)
    assert seen == ["cuda", "cpu"] and loaded.network.moves == ["cpu"] and no_cache == [1]
    assert warnings == [FALLBACK_WARNING]


def test_other_errors_and_cpu_errors_are_not_retried(no_cache):
    loaded, warnings = Loaded(), []

    def fails(error):
        def work(device):
            raise error
        return work

    with pytest.raises(RuntimeError, match="shapes do not match"):
        engine._on_device(loaded, CUDA, warnings, fails(RuntimeError("shapes do not match")))
    with pytest.raises(torch.cuda.OutOfMemoryError):           # already on the CPU: nowhere to go
        engine._on_device(loaded, CPU, warnings, fails(oom()))
    assert warnings == [] and loaded.network.moves == [] and no_cache == []
    # Success on the GPU stays there.
    assert engine._on_device(loaded, CUDA, warnings, lambda d: d.type) == ("cuda", CUDA)
    assert warnings == [] and loaded.network.moves == []


def test_out_of_memory_is_recognised_by_type_and_by_message():
    assert is_out_of_memory(oom())
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))      # older PyTorch, cuDNN
    assert not is_out_of_memory(RuntimeError("Expected all tensors to be on the same device"))


def test_the_analysis_finishes_on_the_cpu_and_says_so(tiny_model, tmp_path, monkeypatch, no_cache):
    """A whole analysis given a (simulated) GPU whose memory runs out at the MTV: it finishes on the
    CPU, result.json names the CPU and the warning, and the scores equal a plain CPU run's."""
    from MTLRadiomicsLib.model.model_file import load_model

    suv = np.ones((40, 40, 40), np.float32)
    k, j, i = np.indices(suv.shape)
    suv[(k - 20) ** 2 + (j - 20) ** 2 + (i - 20) ** 2 <= 16] = 8.0
    path = tmp_path / "pet.nii.gz"
    sitk.WriteImage(PetVolume(suv=suv, spacing=(3.0, 3.0, 3.0), origin=(-60.0, -60.0, -60.0),
                              direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)).to_sitk(), str(path))
    options = AnalysisOptions(point=(0.0, 0.0, 0.0), model=tiny_model, samples=3, mtv_method="suv2.5",
                              report=False, seed=5, device="cpu")
    plain = engine.analyze(path, tmp_path / "cpu", options)

    handed: list[str] = []
    real_segment, real_predict = engine.segment_lesion, engine.predict

    def segment(pet, seed, method, network, card, device, **kwargs):
        handed.append(f"mtv {device.type}")
        if device.type == "cuda":
            raise oom()
        return real_segment(pet, seed, method, network, card, device, **kwargs)

    def predict(network, crop, device, *args):
        handed.append(f"scores {device.type}")
        if device.type == "cuda":
            raise oom()
        return real_predict(network, crop, device, *args)

    monkeypatch.setattr(engine, "choose_device", lambda name, warnings: CUDA)
    monkeypatch.setattr(engine, "segment_lesion", segment)
    monkeypatch.setattr(engine, "predict", predict)
    loaded = load_model(tiny_model)
    moves: list[str] = []
    real_to = loaded.network.to

    def to(device, *args, **kwargs):            # a CUDA move is only recorded
        moves.append(torch.device(device).type)
        return real_to(CPU)

    loaded.network.to = to
    result = engine.analyze(path, tmp_path / "gpu", options, loaded=loaded)

    assert handed == ["mtv cuda", "mtv cpu", "scores cpu"]      # once fallen back, the CPU stays
    assert moves == ["cuda", "cpu"]
    assert result.device == "cpu" and result.warnings.count(FALLBACK_WARNING) == 1
    saved = json.loads((tmp_path / "gpu" / "result.json").read_text())
    assert saved["device"] == "cpu" and FALLBACK_WARNING in saved["warnings"]
    assert result.metrics == plain.metrics
    assert result.scores.outcome == plain.scores.outcome
