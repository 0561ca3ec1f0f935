"""Plausibility of an MTV: which findings withhold the scores and which only warn."""

from __future__ import annotations

import numpy as np

from MTLRadiomicsLib.mtv.plausibility import check_mtv

SPACING = (4.0, 4.0, 4.0)


def lesion(shape=(40, 40, 40), centre=(20, 20, 20), radius=4, suv=8.0):
    suv_map = np.ones(shape, np.float32)
    k, j, i = np.indices(shape)
    ball = (k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2 <= radius ** 2
    suv_map[ball] = suv
    return suv_map, ball


def test_a_plain_lesion_at_the_point_is_valid_without_warnings():
    suv, ball = lesion()
    check = check_mtv(ball, suv, SPACING, (20, 20, 20), "test")
    assert check.valid and check.flags == [] and check.warnings == []


def test_an_mtv_away_from_the_point_is_not_the_lesion():
    suv, ball = lesion()
    check = check_mtv(ball, suv, SPACING, (20, 20, 28), "test")        # 4 voxels = 16 mm outside
    assert not check.valid and check.flags == ["far_from_point"]
    assert "16 mm" in check.withheld_reason
    near = check_mtv(ball, suv, SPACING, (20, 20, 25), "test")          # 4 mm outside: a note only
    assert near.valid and near.flags == [] and "4 mm outside" in near.warnings[0]


def test_an_mtv_joined_to_a_much_hotter_structure_is_flagged():
    suv, ball = lesion(suv=3.0)
    bladder, other = lesion(centre=(20, 20, 30), radius=3, suv=40.0)
    suv = np.maximum(suv, bladder)
    bridge = np.zeros_like(ball)
    bridge[20, 20, 20:31] = True
    check = check_mtv(ball | other | bridge, suv, SPACING, (20, 20, 20), "test")
    assert check.valid and check.flags == ["joined_hotter"] and "SUV 40.0" in check.warnings[0]
    alone = check_mtv(ball, suv, SPACING, (20, 20, 20), "test")
    assert alone.valid and alone.flags == []


def test_the_withheld_reason_is_the_finding_that_withholds_not_a_note():
    suv, ball = lesion()
    check = check_mtv(ball, suv, SPACING, (20, 20, 25), "test", reached_limit=["left"])   # a note comes first
    assert check.warnings[0].startswith("the point lies 4 mm outside")
    assert not check.valid and check.withheld_reason.startswith("the MTV (test) kept growing")


def test_cut_and_huge_mtvs_warn_but_keep_the_scores():
    suv, ball = lesion()
    cut = check_mtv(ball, suv, SPACING, (20, 20, 20), "test", cut_at_scan_end=["superior"])
    assert cut.valid and cut.flags == ["cut_at_scan_end"] and "lower bounds" in cut.warnings[0]
    big = np.ones((80, 80, 80), bool)
    huge = check_mtv(big, np.full(big.shape, 5.0, np.float32), (4.0, 4.0, 4.0), (40, 40, 40), "test")
    assert huge.valid and huge.flags == ["huge"]


def test_tiny_and_faint_mtvs_are_no_lesion_and_withhold_the_scores():
    """A 0.1 ml MTV of SUVmax 2.7 (a point in the wrong thigh) or an MTV of SUVmax 1.5: no scores."""
    suv, ball = lesion()
    one = np.zeros_like(ball)
    one[20, 20, 20] = True
    tiny = check_mtv(one, suv, (2.0, 2.0, 2.0), (20, 20, 20), "test")
    assert not tiny.valid and tiny.flags == ["tiny"] and "withheld" in tiny.withheld_reason
    faint_suv = np.where(ball, 1.5, 1.0).astype(np.float32)
    faint = check_mtv(ball, faint_suv, SPACING, (20, 20, 20), "test")
    assert not faint.valid and faint.flags == ["low_uptake"] and "withheld" in faint.withheld_reason


def test_a_point_outside_fdg_avid_tissue_is_named():
    from MTLRadiomicsLib.mtv.plausibility import point_avidity_warning

    suv, ball = lesion()
    assert point_avidity_warning(suv, (20, 20, 20), SPACING) == ""           # in the lesion
    cold = np.full((40, 40, 40), 1.2, np.float32)
    cold[30, 30, 30] = 2.4
    text = point_avidity_warning(cold, (5, 5, 5), SPACING, "RAS")
    assert "not lie in FDG-avid tissue" in text and "SUV 1.20 at the point" in text and "--lps" in text
    assert "drop --lps" in point_avidity_warning(cold, (5, 5, 5), SPACING, "LPS")


def test_leaks_and_empty_mtvs_withhold_the_scores():
    suv, ball = lesion()
    leak = check_mtv(ball, suv, SPACING, (20, 20, 20), "test", reached_limit=["left"])
    assert not leak.valid and leak.flags == ["reached_limit"]
    empty = check_mtv(np.zeros_like(ball), suv, SPACING, (20, 20, 20), "test")
    assert not empty.valid and empty.flags == ["empty"] and "withheld" in empty.withheld_reason
