"""Grad-CAM for every scale from one forward and one backward pass, checked against MONAI's GradCAM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.visualize import GradCAM

from MTLRadiomicsLib.analysis.gradcam import gradcam_all_scales
from MTLRadiomicsLib.model import MultiTaskNet, named_config
from MTLRadiomicsLib.model.config import ALL_SCALES


class OutcomeLogit(torch.nn.Module):
    """The network seen as a one-logit classifier of the outcome, for MONAI's GradCAM."""

    def __init__(self, net: MultiTaskNet, mask: torch.Tensor | None = None):
        super().__init__()
        self.net = net
        self.mask = mask

    def forward(self, x):
        return self.net(x, mask=self.mask)["outcome"][:, None]


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(3)
    return MultiTaskNet(named_config("tiny", dropout=0.0)).eval()


@pytest.fixture(scope="module")
def image():
    torch.manual_seed(4)
    x = torch.rand(1, 1, 32, 32, 32) * 0.2
    x[..., 12:20, 10:18, 14:22] += 1.0
    return x


def minmax(a: np.ndarray) -> np.ndarray:
    return (a - a.min()) / (a.max() - a.min())


def test_every_scale_has_a_heatmap_in_unit_range(network, image):
    maps = gradcam_all_scales(network, image, "outcome")
    assert list(maps) == list(ALL_SCALES)
    for scale, heatmap in maps.items():
        assert heatmap.shape == (32, 32, 32), scale
        assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0 + 1e-6
    assert sum(float(m.max()) for m in maps.values()) > 0


def test_one_forward_and_one_backward_for_all_scales(network, image, monkeypatch):
    calls = {"forward": 0, "grad": 0}
    hook = network.encoder.enc1.register_forward_hook(lambda *a: calls.__setitem__("forward", calls["forward"] + 1))
    original = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        calls["grad"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    try:
        gradcam_all_scales(network, image, "segmentation")
    finally:
        hook.remove()
    assert calls == {"forward": 1, "grad": 1}


@pytest.mark.parametrize("scale, layer", [("enc5", "net.encoder.enc5"), ("enc3", "net.encoder.enc3"),
                                          ("dec3", "net.segmentation.dec3")])
def test_matches_monai_gradcam_per_scale(network, image, scale, layer):
    ours = gradcam_all_scales(network, image, "outcome")[scale]
    # MONAI's default post-processing flips the map (min -> 1); compare the raw maps, both min-max scaled.
    cam = GradCAM(nn_module=OutcomeLogit(network), target_layers=layer, postprocessing=lambda m: m)
    theirs = cam(image)[0, 0].detach().numpy()
    np.testing.assert_allclose(minmax(ours), minmax(theirs), atol=1e-4)


def test_segmentation_target_and_external_mask(network, image):
    seg_maps = gradcam_all_scales(network, image, "segmentation")
    out_maps = gradcam_all_scales(network, image, "outcome")
    assert any(not np.allclose(seg_maps[s], out_maps[s]) for s in ALL_SCALES)
    mask = torch.zeros(1, 1, 32, 32, 32)
    mask[..., 12:20, 10:18, 14:22] = 1.0
    with_mask = gradcam_all_scales(network, image, "outcome", mask=mask)
    assert set(with_mask) == set(ALL_SCALES)
    # The outcome head reads the external mask: the maps change with it, and each equals MONAI's
    # GradCAM of the network given that mask.
    assert any(not np.allclose(with_mask[s], out_maps[s], atol=1e-4) for s in ALL_SCALES)
    for scale, layer in (("enc3", "net.encoder.enc3"), ("dec3", "net.segmentation.dec3")):
        cam = GradCAM(nn_module=OutcomeLogit(network, mask), target_layers=layer, postprocessing=lambda m: m)
        theirs = cam(image)[0, 0].detach().numpy()
        np.testing.assert_allclose(minmax(with_mask[scale]), minmax(theirs), atol=1e-4, err_msg=scale)


def test_unknown_target_is_refused(network, image):
    with pytest.raises(ValueError, match="target"):
        gradcam_all_scales(network, image, "pathology")
