"""The multi-task network: shapes of every head per configuration, losses on known values,
partial labels, external masks, and model files (safetensors + JSON card)."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from MTLRadiomicsLib.errors import ModelFileError
from MTLRadiomicsLib.model import LossConfig, ModelCard, MultiTaskNet, load_model, named_config, save_model
from MTLRadiomicsLib.model.losses import MultiTaskLoss, cox_loss, segmentation_loss

TASKS = ("reconstruction", "segmentation", "classification", "outcome")


def forward(config, size=32, batch=2, mask=None):
    torch.manual_seed(0)
    net = MultiTaskNet(config).eval()
    x = torch.rand(batch, config.in_channels, size, size, size)
    with torch.no_grad():
        return net, x, net(x, mask=mask)


@pytest.mark.parametrize("preset, backbone", [("tiny", "unet"), ("tiny", "resnet"), ("small", "unet"),
                                              ("small", "resnet")])
def test_every_head_has_the_documented_shape(preset, backbone):
    config = named_config(preset, backbone=backbone, detection=True)
    _, x, out = forward(config, size=32)
    assert out["reconstruction"].shape == x.shape
    assert out["segmentation"].shape == (2, 1, 32, 32, 32)
    assert out["classification"].shape == (2, 1)
    assert out["outcome"].shape == (2,)
    assert out["detection"].shape == (2, 6)
    assert float(out["detection"].min()) >= 0 and float(out["detection"].max()) <= 1
    f = config.features
    expected = {"enc1": (f[0], 32), "enc2": (f[1], 16), "enc3": (f[2], 8), "enc4": (f[3], 4), "enc5": (f[4], 2),
                "dec4": (f[3], 4), "dec3": (f[2], 8), "dec2": (f[1], 16), "dec1": (f[0], 32)}
    for scale, (channels, side) in expected.items():
        assert out["features"][scale].shape == (2, channels, side, side, side), scale


def test_paper_configuration_has_the_published_widths():
    config = named_config("paper")
    assert config.features == (64, 128, 256, 512, 1024)
    net = MultiTaskNet(config)
    assert net.encoder.enc5.convs.conv_1.conv.out_channels == 1024
    assert isinstance(net.encoder.dropout, torch.nn.Dropout3d) and net.encoder.dropout.p == 0.5


def test_pet_ct_input_multiclass_and_survival():
    config = named_config("tiny", in_channels=2, n_classes=3, outcome_kind="survival")
    _, x, out = forward(config)
    assert out["reconstruction"].shape[1] == 2
    assert out["classification"].shape == (2, 3)
    assert out["outcome"].shape == (2,)


@pytest.mark.parametrize("combo", [c for n in range(1, 5) for c in itertools.combinations(TASKS, n)])
def test_all_fifteen_task_combinations_are_configurations(combo):
    flags = {t: t in combo for t in TASKS}
    config = named_config("tiny", **flags, tumour_features="segmentation" in combo)
    _, _, out = forward(config)
    assert set(out) - {"features", "outcome_features"} == set(combo)
    assert ("outcome_features" in out) == ("outcome" in combo)


@pytest.mark.parametrize("tumour, global_", [(True, False), (False, True), (True, True)])
def test_outcome_feature_switches(tumour, global_):
    config = named_config("tiny", tumour_features=tumour, global_features=global_)
    net, x, out = forward(config)
    head = net.outcome
    assert (head.tumour is not None) == tumour
    assert out["outcome"].shape == (2,)


def test_external_mask_replaces_the_predicted_segmentation():
    config = named_config("tiny", dropout=0.0)
    net, x, out = forward(config)
    empty = torch.zeros(2, 1, 32, 32, 32)
    full = torch.ones(2, 1, 32, 32, 32)
    with torch.no_grad():
        a, b = net(x, mask=empty)["outcome"], net(x, mask=full)["outcome"]
        again = net(x)["outcome"]
    assert not torch.allclose(a, b)
    assert torch.allclose(again, out["outcome"])


def test_tumour_features_without_segmentation_need_a_mask():
    config = named_config("tiny", segmentation=False, tumour_features=True, global_features=False)
    net = MultiTaskNet(config).eval()
    x = torch.rand(1, 1, 32, 32, 32)
    with pytest.raises(ValueError, match="external mask"):
        net(x)
    assert net(x, mask=torch.ones(1, 1, 32, 32, 32))["outcome"].shape == (1,)


def test_bad_input_shape_is_refused():
    net = MultiTaskNet(named_config("tiny"))
    with pytest.raises(ValueError, match="multiple of 16"):
        net(torch.rand(1, 1, 30, 32, 32))
    with pytest.raises(ValueError, match="input must be"):
        net(torch.rand(1, 2, 32, 32, 32))


def test_invalid_configurations_are_refused():
    with pytest.raises(ValueError):
        named_config("tiny", reconstruction=False, segmentation=False, classification=False, outcome=False)
    with pytest.raises(ValueError):
        named_config("tiny", tumour_features=False, global_features=False)
    with pytest.raises(ValueError):
        named_config("huge")
    with pytest.raises(ValueError):
        LossConfig(alpha=0.4, lam=0.3)            # omega would be negative


# ----------------------------------------------------------------------------- losses
def logits_for(mask: torch.Tensor) -> torch.Tensor:
    return (mask * 2 - 1) * 20.0                  # sigmoid ~ 0 or 1


@pytest.mark.parametrize("kind", ["dice", "dice_ce", "dice_focal", "tversky"])
def test_segmentation_losses_on_known_values(kind):
    loss = segmentation_loss(LossConfig(seg_loss=kind))
    target = torch.zeros(1, 1, 8, 8, 8)
    target[..., 2:6, 2:6, 2:6] = 1
    perfect = float(loss(logits_for(target), target))
    disjoint = float(loss(logits_for(1 - target), target))
    assert perfect < 1e-3
    assert disjoint > 0.99


def test_dice_and_tversky_values_on_half_overlap():
    target = torch.zeros(1, 1, 4, 4, 4)
    target[..., :2] = 1                              # 32 voxels
    pred = torch.zeros_like(target)
    pred[..., 1:3] = 1                               # 32 voxels, 16 shared
    dice = float(segmentation_loss(LossConfig(seg_loss="dice"))(logits_for(pred), target))
    assert dice == pytest.approx(1 - 2 * 16 / 64, abs=1e-4)
    tversky = float(segmentation_loss(LossConfig(seg_loss="tversky", tversky_alpha=0.3, tversky_beta=0.7))(
        logits_for(pred), target))
    assert tversky == pytest.approx(1 - 16 / (16 + 0.3 * 16 + 0.7 * 16), abs=1e-4)


def test_cox_loss_matches_the_partial_likelihood_by_hand():
    log_hz = torch.tensor([0.5, -0.2, 1.0, 0.0])
    time = torch.tensor([2.0, 5.0, 1.0, 7.0])
    event = torch.tensor([1, 0, 1, 1])
    # Risk sets: t=1 {all}, t=2 {0,1,3}, t=7 {3}
    e = torch.exp(log_hz)
    nll = -((1.0 - math.log(e.sum())) + (0.5 - math.log(e[[0, 1, 3]].sum())) + (0.0 - math.log(e[3])))
    assert float(cox_loss(log_hz, event, time, "breslow")) == pytest.approx(nll / 3, rel=1e-5)
    assert float(cox_loss(log_hz, event, time, "efron")) == pytest.approx(nll / 3, rel=1e-5)  # no ties


def test_cox_efron_and_breslow_differ_with_ties():
    log_hz = torch.tensor([0.3, 0.8, -0.5, 0.1])
    time = torch.tensor([3.0, 3.0, 5.0, 6.0])
    event = torch.tensor([1, 1, 1, 0])
    e = torch.exp(log_hz)
    breslow = -((0.3 + 0.8 - 2 * math.log(e.sum())) + (-0.5 - math.log(e[[2, 3]].sum())))
    tied = e[0] + e[1]
    efron = -((0.3 + 0.8 - math.log(e.sum()) - math.log(e.sum() - 0.5 * tied)) + (-0.5 - math.log(e[[2, 3]].sum())))
    assert float(cox_loss(log_hz, event, time, "breslow")) == pytest.approx(breslow / 3, rel=1e-5)
    assert float(cox_loss(log_hz, event, time, "efron")) == pytest.approx(float(efron) / 3, rel=1e-5)


def full_batch(x, seed=1):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(x.shape, generator=g) > 0.7).float()[:, :1]
    return {"image": x, "mask": mask, "has_mask": torch.tensor([True, True]),
            "pathology": torch.tensor([0, 1]), "has_pathology": torch.tensor([True, True]),
            "response": torch.tensor([1.0, 0.0]), "has_response": torch.tensor([True, True]),
            "time": torch.tensor([3.0, 9.0]), "event": torch.tensor([1, 1]), "has_survival": torch.tensor([True, True])}


def test_paper_weighting_of_task_losses():
    config = named_config("tiny")
    net, x, out = forward(config)
    criterion = MultiTaskLoss(config, LossConfig(alpha=0.2, lam=0.3))
    total, parts = criterion(out, full_batch(x))
    expected = 0.2 * parts["reconstruction"] + 0.2 * parts["segmentation"] + 0.3 * parts["classification"] \
        + 0.3 * parts["outcome"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert parts["reconstruction"] == pytest.approx(float(((out["reconstruction"] - x) ** 2).mean()), rel=1e-6)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out["classification"][:, 0], torch.tensor([0.0, 1.0]))
    assert float(parts["classification"]) == pytest.approx(float(bce), rel=1e-6)


def test_uncertainty_weighting_learns_one_log_variance_per_task():
    config = named_config("tiny")
    net, x, out = forward(config)
    criterion = MultiTaskLoss(config, LossConfig(weighting="uncertainty"))
    assert set(criterion.log_vars.keys()) == set(config.tasks)
    with torch.no_grad():
        criterion.log_vars["outcome"].fill_(1.0)
    total, parts = criterion(out, full_batch(x))
    expected = sum(math.exp(-(1.0 if t == "outcome" else 0.0)) * float(v) + (1.0 if t == "outcome" else 0.0)
                   for t, v in parts.items())
    assert float(total) == pytest.approx(expected, rel=1e-5)


def test_partial_labels_use_only_labelled_cases():
    config = named_config("tiny")
    net, x, out = forward(config)
    criterion = MultiTaskLoss(config)
    batch = full_batch(x)
    batch["has_mask"] = torch.tensor([True, False])
    batch["has_pathology"] = torch.tensor([False, True])
    batch["has_response"] = torch.tensor([True, False])
    _, parts = criterion(out, batch)
    changed = dict(batch)
    changed["mask"] = batch["mask"].clone()
    changed["mask"][1] = 1 - changed["mask"][1]        # unlabelled: must not matter
    changed["pathology"] = torch.tensor([1, 1])
    changed["response"] = torch.tensor([1.0, 1.0])
    _, parts2 = criterion(out, changed)
    for task in ("segmentation", "classification", "outcome"):
        assert float(parts[task]) == pytest.approx(float(parts2[task]))
    single = {k: (v[:1] if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    out_single = {k: (v[:1] if isinstance(v, torch.Tensor) else v) for k, v in out.items() if k != "features"}
    _, one = criterion(out_single, single)
    assert float(parts["segmentation"]) == pytest.approx(float(one["segmentation"]), rel=1e-5)


def test_task_without_any_label_contributes_zero_but_keeps_the_graph():
    config = named_config("tiny")
    net = MultiTaskNet(config)
    x = torch.rand(2, 1, 32, 32, 32)
    out = net(x)
    batch = full_batch(x)
    batch["has_mask"] = torch.tensor([False, False])
    total, parts = MultiTaskLoss(config)(out, batch)
    assert float(parts["segmentation"]) == 0.0
    total.backward()
    assert all(p.grad is not None for p in net.segmentation.parameters())


# ----------------------------------------------------------------------------- model files
def test_export_and_reload_give_identical_outputs(tmp_path):
    config = named_config("tiny", detection=True, outcome_kind="survival")
    net, x, out = forward(config)
    card_path = save_model(net, ModelCard(name="test", architecture={}), tmp_path / "m")
    card = json.loads(card_path.read_text())
    assert card["architecture"]["outcome_kind"] == "survival" and len(card["weights_sha256"]) == 64
    loaded = load_model(tmp_path / "m")
    with torch.no_grad():
        again = loaded.network(x)
    for key in ("reconstruction", "segmentation", "classification", "outcome", "detection"):
        assert torch.equal(out[key], again[key]), key
    assert not loaded.network.training


def test_damaged_weights_and_cards_are_refused(tmp_path):
    net = MultiTaskNet(named_config("tiny"))
    save_model(net, ModelCard(name="x", architecture={}), tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not a valid model card"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelFileError, match="no model card"):
        load_model(tmp_path / "absent")


def test_weights_of_another_architecture_are_refused(tmp_path):
    save_model(MultiTaskNet(named_config("tiny")), ModelCard(name="x", architecture={}), tmp_path / "m")
    card_path = tmp_path / "m" / "model.json"
    card = json.loads(card_path.read_text())
    card["architecture"]["features"] = [8, 8, 8, 8, 8]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="does not fit"):
        load_model(tmp_path / "m")


def test_survival_head_beside_a_binary_outcome_and_its_cox_loss():
    config = named_config("tiny", survival=True)
    net, x, out = forward(config, batch=4)
    assert out["outcome"].shape == (4,) and out["survival"].shape == (4,)
    assert "survival" in config.tasks
    batch = {"image": x, "mask": torch.zeros(4, 1, 32, 32, 32), "has_mask": torch.zeros(4, dtype=torch.bool),
             "response": torch.tensor([0., 1., 0., 1.]), "has_response": torch.ones(4, dtype=torch.bool),
             "time": torch.tensor([5., 3., 8., 1.]), "event": torch.tensor([1, 0, 1, 1]),
             "has_survival": torch.ones(4, dtype=torch.bool),
             "pathology": torch.zeros(4, dtype=torch.long), "has_pathology": torch.zeros(4, dtype=torch.bool)}
    losses = MultiTaskLoss(config, LossConfig()).task_losses(out, batch)
    expected = cox_loss(out["survival"], batch["event"], batch["time"], "efron")
    assert float(losses["survival"]) == pytest.approx(float(expected))
    assert float(losses["outcome"]) > 0
    with pytest.raises(ValueError, match="binary outcome"):
        named_config("tiny", survival=True, outcome_kind="survival")


def test_metric_features_reach_the_outcome_head():
    from MTLRadiomicsLib.model.metric_features import metric_vector

    config = named_config("tiny", metric_features=True, dropout=0.0)
    torch.manual_seed(0)
    net = MultiTaskNet(config).eval()
    x = torch.rand(1, 1, 32, 32, 32)
    small = torch.as_tensor(metric_vector({"suv_max": 3.0, "suv_peak": 2.5, "mtv_ml": 5.0, "tlg": 10.0}))[None]
    large = torch.as_tensor(metric_vector({"suv_max": 20.0, "suv_peak": 15.0, "mtv_ml": 900.0, "tlg": 6000.0}))[None]
    with torch.no_grad():
        a, b = net(x, metrics=small), net(x, metrics=large)
    assert a["outcome_features"].shape[1] == b["outcome_features"].shape[1] == net.outcome.n_in
    assert torch.equal(a["outcome_features"][0, -4:], small[0])
    assert float(a["outcome"]) != pytest.approx(float(b["outcome"]), abs=1e-7)
    assert torch.equal(a["segmentation"], b["segmentation"])        # only the outcome depends on them
    with pytest.raises(ValueError, match="PET metric features"):
        net(x)
    assert metric_vector({"suv_max": 0.0, "suv_peak": -1.0, "mtv_ml": 0.0, "tlg": 0.0}).tolist() == [0, 0, 0, 0]


def test_metric_features_enter_standardised_and_the_weights_file_is_unchanged():
    """(value - centre) / scale from the configuration: same weights, same output as pre-standardised input."""
    plain = MultiTaskNet(named_config("tiny", metric_features=True, dropout=0.0)).eval()
    standard = MultiTaskNet(named_config("tiny", metric_features=True, dropout=0.0, metric_center=(1, 2, 3, 4),
                                         metric_scale=(2, 2, 2, 2))).eval()
    assert set(plain.state_dict()) == set(standard.state_dict())
    standard.load_state_dict(plain.state_dict())
    x = torch.rand(1, 1, 32, 32, 32)
    metrics = torch.tensor([[3.0, 4.0, 5.0, 6.0]])
    expected = plain(x, metrics=(metrics - torch.tensor([1.0, 2.0, 3.0, 4.0])) / 2.0)["outcome"]
    assert torch.allclose(standard(x, metrics=metrics)["outcome"], expected, atol=1e-6)
    with pytest.raises(ValueError, match="go together"):
        named_config("tiny", metric_features=True, metric_center=(0, 0, 0, 0))


def test_the_heads_get_their_own_learning_rate():
    from training.trainer import parameter_groups

    network = MultiTaskNet(named_config("tiny", survival=True))
    groups = parameter_groups(network, torch.nn.Linear(1, 1), 1e-4, 1e-3)
    assert [g["lr"] for g in groups] == [1e-4, 1e-3]
    heads = {id(p) for m in (network.outcome, network.survival, network.classification) for p in m.parameters()}
    assert {id(p) for p in groups[1]["params"]} == heads
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(network.parameters())) + 2
    assert len(parameter_groups(network, torch.nn.Linear(1, 1), 1e-4, 0.0)) == 1
