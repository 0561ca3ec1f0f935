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


def test_explained_scalars_by_hand():
    from MTLRadiomicsLib.analysis.gradcam import explain_target

    logits = torch.tensor([[[[[2.0, -1.0], [4.0, -3.0]]]]])
    # the mean segmentation logit over the predicted MTV (logit > 0): (2 + 4) / 2
    assert float(explain_target({"segmentation": logits}, "segmentation")) == pytest.approx(3.0)
    # a logit of 0 is outside the MTV (probability 0.5, not above), one of 0.5 inside
    edge = torch.tensor([[[[[2.0, -1.0], [0.5, 0.0]]]]])
    assert float(explain_target({"segmentation": edge}, "segmentation")) == pytest.approx(1.25)
    # nothing segmented: the mean over the whole crop
    assert float(explain_target({"segmentation": -logits.abs()}, "segmentation")) == pytest.approx(-2.5)
    assert float(explain_target({"outcome": torch.tensor([0.75])}, "outcome")) == pytest.approx(0.75)
    with pytest.raises(ValueError) as no_outcome:
        explain_target({"segmentation": logits}, "outcome")
    assert str(no_outcome.value) == "this model has no outcome head to explain; use --explain segmentation"
    with pytest.raises(ValueError) as no_seg:
        explain_target({"outcome": torch.tensor([0.75])}, "segmentation")
    assert str(no_seg.value) == "this model has no segmentation head to explain; use --explain outcome"
    with pytest.raises(ValueError) as other:
        explain_target({"outcome": torch.tensor([0.75])}, "pathology")
    assert str(other.value) == "explanation target must be one of ('outcome', 'segmentation'), not 'pathology'"


def test_a_flat_map_is_zero_and_every_map_peaks_at_one(network, image):
    maps = gradcam_all_scales(network, image, "outcome")
    for scale, heat in maps.items():
        assert heat.shape == (32, 32, 32) and heat.dtype == np.float32
        assert heat.max() == pytest.approx(1.0) or not heat.any(), scale
        assert heat.min() >= 0.0
    assert sum(bool(h.any()) for h in maps.values()) >= 5          # most scales explain the score


def test_a_model_with_metric_features_is_explained_with_the_lesions_metrics():
    """The outcome of a model that takes the PET metrics depends on them; Grad-CAM must explain the
    score of these metrics (checked by hand for one scale), not of absent ones."""
    torch.manual_seed(8)
    net = MultiTaskNet(named_config("tiny", dropout=0.0, metric_features=True)).eval()
    torch.manual_seed(9)
    x = torch.rand(1, 1, 32, 32, 32)
    small, large = torch.tensor([[0.1, 0.2, -1.0, 0.3]]), torch.tensor([[3.0, 2.5, 4.0, 5.0]])
    maps = gradcam_all_scales(net, x, "outcome", metrics=large)
    out = net(x, metrics=large)
    activation = out["features"]["enc5"]
    (grad,) = torch.autograd.grad(out["outcome"].sum(), [activation])
    cam = torch.relu((grad.mean(dim=(2, 3, 4), keepdim=True) * activation).sum(dim=1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=(32, 32, 32), mode="trilinear", align_corners=False)[0, 0]
    expected = (cam / cam.max()).detach().numpy() if float(cam.max()) > 0 else np.zeros((32, 32, 32), np.float32)
    np.testing.assert_allclose(maps["enc5"], expected, atol=1e-5)
    other = gradcam_all_scales(net, x, "outcome", metrics=small)
    assert any(not np.allclose(maps[s], other[s], atol=1e-4) for s in maps)
