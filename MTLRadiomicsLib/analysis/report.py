"""The one-page report a physician reads: an A4 PDF and a self-contained, printable HTML page.

Both show the same content: intended-use banner, patient and series facts, coronal MIP with the
analysed lesion and the other candidates, slices through the MTV, Grad-CAM heatmaps per scale,
PET metrics, scores with their uncertainty, how the lesion was located, and the model's held-out
performance.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import RendererAgg  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from MTLRadiomicsLib.analysis import report_figures as rf  # noqa: E402
from MTLRadiomicsLib.analysis.report_html import render_html  # noqa: E402
from MTLRadiomicsLib.analysis.result import AnalysisResult, Estimate, outcome_label  # noqa: E402
from MTLRadiomicsLib.mtv.pet_metrics import LESION_SUV_MAX_DEFINITION  # noqa: E402
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume  # noqa: E402

TITLE = "MTLRadiomics PET analysis"
DASH = "—"
EDITED_NOTE = "MTV edited by the user; scores re-computed"
RESEARCH_USE = "Research use only"
DEFAULT_INTENDED_USE = "Research use only. Not for clinical use."

DOMAIN_OUTSIDE = "Outside the model's training domain"
UNCERTAINTY_NAMES = {"mc_dropout": "Monte-Carlo dropout", "mc-dropout": "Monte-Carlo dropout",
                     "tta": "test-time augmentation", "ensemble": "model ensemble"}
LOCATION_METHODS = {"point": "point (seed placed by the user)", "box": "box (drawn by the user)",
                    "automatic": "automatic (highest-ranked candidate)",
                    "edited mask": "edited MTV (centre of the user's mask)"}
HELD_OUT_NAMES = [("dice", "Dice"), ("outcome_auc", "response AUC"), ("c_index", "C-index"),
                  ("class_auc", "pathology AUC"), ("class_accuracy", "pathology accuracy"),
                  ("box_centre_error", "box centre error")]
SERIES_KEYS = {
    "patient_id": ("PatientID", "patient_id"),
    "sex": ("PatientSex", "patient_sex", "sex"),
    "age": ("PatientAge", "patient_age", "age"),
    "study_date": ("StudyDate", "study_date", "SeriesDate", "series_date"),
    "series": ("SeriesDescription", "series_description", "description"),
    "manufacturer": ("Manufacturer", "manufacturer"),
    "model": ("ManufacturerModelName", "manufacturer_model_name", "scanner"),
    "tracer": ("Radiopharmaceutical", "radiopharmaceutical", "tracer"),
}


@dataclass
class ReportText:
    """Every text of the report, shared by the PDF and the HTML page."""

    title: str
    subtitle: str
    intended_use: str
    edited_note: str
    warnings: list[str]
    facts: list[tuple[str, str]]
    metrics: list[tuple[str, str, str]]             # name, value, unit
    outcome: tuple[str, str]                        # label, "mean ± sd"
    outcome_meaning: str
    pathology: list[tuple[str, str]]                # "Pathology: <class>", "mean ± sd"
    uncertainty: str
    location: list[tuple[str, str]]
    gradcam_caption: str
    mtv_methods: list[tuple[str, str]] = field(default_factory=list)   # method label, "ml · SUVmean · Dice"
    mtv_methods_short: list[tuple[str, str]] = field(default_factory=list)   # the same, short (the PDF)
    mtv_label: str = ""
    lesion_note: str = ""                           # what the lesion SUVmax is and where
    gradcam_note: str = ""                          # why heat can sit at the field's edge
    withheld: str = ""
    pathology_note: str = ""
    domain_note: str = ""
    scale_titles: dict[str, str] = field(default_factory=dict)
    model_line: str = ""
    held_out_line: str = ""
    footer: str = RESEARCH_USE
    edited_mask: str = ""                           # a rescore's mask: file name and SHA-256


# --- formatting -------------------------------------------------------------------------------

def number(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, never as a negative zero ("-0.0" is printed "0.0")."""
    text = f"{float(value):.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


def format_metric(key: str, value: Optional[float]) -> str:
    """SUVs with two decimals; MTV and TLG with one decimal from 10 upwards, else two."""
    if value is None or not np.isfinite(float(value)):
        return DASH
    value = float(value)
    if key.startswith("suv") or key.startswith("lesion_suv"):
        return number(value, 2)
    return number(value, 1) if abs(value) >= 10 else number(value, 2)


def format_cm(sizes_mm: Any) -> str:
    """Sizes in mm as centimetres with one decimal, e.g. "9.6 × 9.6 × 9.6 cm"."""
    return " × ".join(number(float(v) / 10.0, 1) for v in sizes_mm) + " cm"


def format_point(point: Any) -> str:
    """A position as "(x, y, z) mm", one decimal."""
    return "(" + ", ".join(number(float(c), 1) for c in point) + ") mm"


def _date(value: Any) -> str:
    text = str(value or "").strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def _age(value: Any) -> str:
    text = str(value or "").strip()
    units = {"Y": "y", "M": "months", "W": "weeks", "D": "days"}
    if len(text) == 4 and text[:3].isdigit() and text[3].upper() in units:
        return f"{int(text[:3])} {units[text[3].upper()]}"
    return text


def _sex(value: Any) -> str:
    text = str(value or "").strip()
    return {"M": "male", "F": "female", "O": "other"}.get(text.upper(), text)


def _created(value: str) -> str:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(value or DASH)


def _or_dash(text: Any) -> str:
    text = "" if text is None else str(text).strip()
    return text if text else DASH


def _series(result: AnalysisResult, pet: Optional[PetVolume]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for source in (getattr(pet, "series", None), (result.pet or {}).get("series"),
                   (result.input or {}).get("series")):
        if isinstance(source, dict):
            merged.update({k: v for k, v in source.items() if v not in (None, "")})
    return merged


def _lookup(series: dict[str, Any], what: str) -> str:
    for key in SERIES_KEYS[what]:
        if series.get(key) not in (None, ""):
            return str(series[key])
    return ""


def _fingerprint(info: dict[str, Any]) -> str:
    value = info.get("sha256") or info.get("fingerprint") or ""
    if isinstance(value, dict):
        value = value.get("sha256") or value.get("value") or ""
    value = str(value)
    return f"{value[:16]}…" if len(value) > 16 else _or_dash(value)


def _facts(result: AnalysisResult, pet: Optional[PetVolume]) -> list[tuple[str, str]]:
    series = _series(result, pet)
    info = result.input or {}
    source = info.get("path") or (result.pet or {}).get("source") or ""
    name = Path(str(source)).name if source else ""
    fmt = info.get("format") or (result.pet or {}).get("format") or ""
    scanner = " ".join(filter(None, [_lookup(series, "manufacturer"), _lookup(series, "model")]))
    conversion = (result.pet or {}).get("suv_conversion") or {}
    return [
        ("Patient ID", _or_dash(_lookup(series, "patient_id"))),
        ("Sex", _or_dash(_sex(_lookup(series, "sex")))),
        ("Age", _or_dash(_age(_lookup(series, "age")))),
        ("Study date", _or_dash(_date(_lookup(series, "study_date")))),
        ("Tracer", _or_dash(_lookup(series, "tracer"))),
        ("Series", _or_dash(_lookup(series, "series"))),
        ("Scanner", _or_dash(scanner)),
        ("Input", _or_dash(f"{name} ({fmt.upper()})" if name and fmt else name)),
        ("SHA-256", _fingerprint(info)),
        ("SUV", _or_dash(conversion.get("method"))),
    ]


def _edited_mask(info: dict[str, Any]) -> str:
    """"Mask: <file name> · SHA-256 <hex>" for a rescore (older results hold the mask's path only)."""
    path = info.get("edited_mask") or ""
    name = info.get("edited_mask_name") or (Path(str(path)).name if path else "")
    if not name:
        return ""
    return f"Mask: {name} · SHA-256 {info.get('edited_mask_sha256') or 'not recorded'}"


def _estimate(est: Optional[Estimate]) -> str:
    if est is None or not (np.isfinite(est.mean) and np.isfinite(est.sd)):
        return DASH
    return f"{number(est.mean, 2)} ± {number(est.sd, 2)}"


def _uncertainty(result: AnalysisResult) -> str:
    scores = result.scores
    if scores.withheld:
        return "no scores"
    reference = scores.outcome or next(iter(scores.pathology.values()), None)
    samples = int(reference.samples) if reference is not None else 0
    raw = str(scores.uncertainty or "").strip()
    method = UNCERTAINTY_NAMES.get(raw.lower(), raw)
    if "sample" in method.lower():            # already says how many samples
        return method
    if samples <= 1:
        return f"{method or 'single pass'}: 1 sample (no spread)"
    return f"{method or 'spread over samples'}, {samples} samples (± 1 SD)"


def _target(result: AnalysisResult) -> str:
    target = str((result.explanation or {}).get("target") or "").strip()
    if target == "outcome":
        return outcome_label(result.scores.outcome_kind, result.scores.outcome_meaning).lower()
    if target == "segmentation":
        return "MTV segmentation"
    return target or DASH


def _candidate_count(result: AnalysisResult) -> str:
    n = len(rf.other_candidates(result))
    return "none" if n == 0 else f"{n} (blue circles on the MIP)"


def _excluded(items: list) -> str:
    counts: dict[str, int] = {}
    for item in items or []:
        if isinstance(item, dict):
            name = next((item[k] for k in ("organ", "name", "region", "label") if item.get(k)), None)
            name = str(name) if name else ", ".join(f"{k} {v}" for k, v in item.items())
        else:
            name = str(item)
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(n if c == 1 else f"{n} ({c})" for n, c in counts.items()) if counts else "none"


def _location(result: AnalysisResult) -> list[tuple[str, str]]:
    loc = result.location
    crop = format_cm(loc.crop_size_mm) if loc.crop_size_mm else DASH
    if loc.crop_size_mm and loc.field_center_lps is not None:
        x, y, z = (float(c) for c in loc.field_center_lps)
        crop += f", centred at {format_point((-x, -y, z))} RAS (the MTV's largest part)"
    rows = [
        ("Method", LOCATION_METHODS.get(loc.method, _or_dash(loc.method))),
        ("Centre (RAS)", format_point(loc.center_ras)),
        ("Network field", crop),
        ("Other candidates", _candidate_count(result)),
        ("Excluded regions", _excluded(loc.excluded)),
    ]
    if loc.note:
        rows.append(("Note", loc.note))
    return rows


def _meaning(meaning: str, label: str) -> str:
    """The outcome's meaning in parentheses, without repeating the label's own words."""
    meaning = (meaning or "").strip()
    core = label.split("(")[-1].rstrip(")").strip().lower()
    if core and meaning.lower().startswith(core):
        meaning = meaning[len(core):].strip()
    if not meaning:
        return ""
    return meaning if meaning.startswith("(") else f"({meaning})"


SYNTHETIC_WORDS = ("synthetic", "phantom")


def _held_out_data(values: dict[str, Any], split: str, model: dict[str, Any]) -> tuple[str, bool]:
    """What the held-out figures were measured on (the card's "data" label, else what the training
    data were, else that the card does not say) and whether that is synthetic data."""
    label = str(values.get("data") or "").strip()
    source = str(((model or {}).get("training_data") or {}).get("source") or "").lower()
    split_name = split.replace("_", " ")
    if not label:
        if any(w in source for w in SYNTHETIC_WORDS):
            label = f"synthetic data, {split_name} split"
        else:
            label = f"{split_name} split; data not stated in the model card"
    synthetic = any(w in label.lower() for w in SYNTHETIC_WORDS) or (
        not values.get("data") and any(w in source for w in SYNTHETIC_WORDS))
    return label, synthetic


def held_out_summary(model: dict[str, Any]) -> str:
    """One line of the model's held-out metrics and the data they were measured on (the card's
    label, n; synthetic data said as such): the cross-validation if present, else the test split,
    else validation."""
    metrics = (model or {}).get("held_out_metrics") or {}
    if not isinstance(metrics, dict) or not metrics:
        return ""
    split, values = "held-out", metrics
    if all(isinstance(v, dict) for v in metrics.values()):
        split = next((s for s in ("cross_validation", "test", "validation") if metrics.get(s)), next(iter(metrics)))
        values = metrics[split]
    parts = []
    for key, label in HELD_OUT_NAMES:
        value = values.get(key)
        if isinstance(value, (int, float)) and np.isfinite(value):
            parts.append(f"{label} {value:.2f}" + (" mm" if key == "box_centre_error" else ""))
    if not parts:
        return ""
    n = values.get("n") or values.get("cases")
    where, synthetic = _held_out_data(values, split, model)
    line = f"Held-out performance ({where}{f', n = {n}' if n else ''}): " + " · ".join(parts)
    return line + (" — measured on synthetic data, not on patient scans" if synthetic else "")


SHORT_METHOD_LABELS = {"network": "Network", "suvmax40": "40 % SUVmax", "suvmax41": "41 % (EANM)",
                       "suvmax50": "50 % SUVmax", "suv2.5": "SUV ≥ 2.5", "percist": "PERCIST (liver)"}


def mtv_method_rows(result: AnalysisResult, short: bool = False) -> list[tuple[str, str]]:
    """One row per MTV method: label (the scored one marked) and "ml · SUVmean · Dice with the scored MTV",
    or why it could not be used; ``short``: brief labels and values for the PDF's narrow column."""
    mtv = result.mtv or {}
    rows = []
    for name, info in (mtv.get("methods") or {}).items():
        chosen = name == mtv.get("method")
        if short:
            label = SHORT_METHOD_LABELS.get(name, str(info.get("label", name))) + (" *" if chosen else "")
            if not info.get("available", False):
                rows.append((label, "not available"))
                continue
            m = info.get("metrics") or {}
            dice = info.get("dice_with_chosen")
            value = f"{format_metric('mtv_ml', m.get('mtv_ml'))} ml"
            value += " (scored)" if chosen else (f" · Dice {dice:.2f}" if dice is not None else "")
            rows.append((label, value))
            continue
        label = str(info.get("label", name)) + (" (scored)" if chosen else "")
        if not info.get("available", False):
            rows.append((label, f"not available: {info.get('reason', '')}".strip()))
            continue
        m = info.get("metrics") or {}
        parts = [f"{format_metric('mtv_ml', m.get('mtv_ml'))} ml", f"SUVmean {format_metric('suv_mean', m.get('suv_mean'))}"]
        dice = info.get("dice_with_chosen")
        if dice is not None and name != mtv.get("method"):
            parts.append(f"Dice {dice:.2f}")
        if info.get("threshold_suv") is not None:
            parts.append(f"≥ {info['threshold_suv']:.2f} SUV")
        rows.append((label, " · ".join(parts)))
    return rows


def _lesion(result: AnalysisResult, views: Optional[rf.Views]) -> tuple[Optional[float], Optional[tuple]]:
    """The lesion's SUVmax and its RAS position (mm): result.json's, else from the views."""
    metrics = result.metrics or {}
    if "lesion_suv_max" in metrics:
        ras = metrics.get("lesion_suv_max_ras")
        return metrics["lesion_suv_max"], tuple(ras) if ras is not None else None
    if views is None or views.mask_box is None:
        return None, None
    x, y, z = views.peak_lps()
    return views.lesion_suv_max, (-x, -y, z)


def _gradcam_texts(result: AnalysisResult, scales: list[str]) -> tuple[str, str]:
    """The Grad-CAM caption (target, slice, the network's field) and the note on heat at its edge."""
    crop_mm = result.location.crop_size_mm
    field = f" · dashed square: the network's field ({format_cm(crop_mm)})" if crop_mm else ""
    caption = (f"Target: {_target(result)} · axial slice through the lesion's hottest voxel · MTV contour "
               f"white{field} · mm: voxel size of the scale's feature map")
    crop = ((result.model or {}).get("preprocessing") or {}).get("crop_size")
    known = [name for name in scales if name in rf.SCALE_DOWNSAMPLING]
    coarse = ""
    if crop and known:
        name = max(known, key=lambda n: rf.SCALE_DOWNSAMPLING[n])
        cells = " × ".join(str(max(1, int(c) // rf.SCALE_DOWNSAMPLING[name])) for c in reversed(crop))
        coarse = f" ({name}: {cells} cells)"
    note = (f"Each map is scaled to its own maximum. Coarse scales have few cells across the field{coarse}: "
            "their heat fills blocks and often peaks at the field's edge or corner, where the network's zero "
            "padding begins; heat there is not a finding.")
    return caption, note


def report_text(result: AnalysisResult, pet: Optional[PetVolume] = None,
                scales: Optional[list[str]] = None, views: Optional[rf.Views] = None) -> ReportText:
    """All texts of the report from the result (and the PET's series facts, the heatmap scales and
    the views, for the lesion's hottest voxel of older results)."""
    scores, metrics = result.scores, result.metrics or {}
    lesion_max, lesion_ras = _lesion(result, views)
    gradcam_caption, gradcam_note = _gradcam_texts(result, rf.ordered_scales(scales or []))
    command = "re-scored" if result.command == "rescore" else (result.command or "")
    model = result.model or {}
    model_name = model.get("name") or DASH
    return ReportText(
        title=TITLE,
        subtitle=f"Engine {result.engine_version} · {_created(result.created)}"
                 + (f" · {command}" if command else ""),
        intended_use=str(model.get("intended_use") or DEFAULT_INTENDED_USE),
        edited_note=EDITED_NOTE if scores.mask_source == "edited" else "",
        edited_mask=_edited_mask(result.input or {}) if scores.mask_source == "edited" else "",
        warnings=[str(w) for w in result.warnings or []],
        facts=_facts(result, pet),
        metrics=[("SUVmax (MTV)", format_metric("suv_max", metrics.get("suv_max")), "g/ml"),
                 ("Lesion SUVmax", format_metric("lesion_suv_max", lesion_max), "g/ml"),
                 ("SUVpeak", format_metric("suv_peak", metrics.get("suv_peak")), "g/ml"),
                 ("SUVmean", format_metric("suv_mean", metrics.get("suv_mean")), "g/ml"),
                 ("MTV", format_metric("mtv_ml", metrics.get("mtv_ml")), "ml"),
                 ("TLG", format_metric("tlg", metrics.get("tlg")), "g")],
        outcome=(outcome_label(scores.outcome_kind, scores.outcome_meaning),
                 "withheld" if scores.withheld else _estimate(scores.outcome)),
        outcome_meaning=_meaning(scores.outcome_meaning, outcome_label(scores.outcome_kind, scores.outcome_meaning)),
        pathology=([] if scores.withheld else
                   ([("Survival risk (log HR)", _estimate(scores.survival))] if scores.survival is not None else [])
                   + [(f"Pathology: {name}", _estimate(est)) for name, est in scores.pathology.items()])
        or [("Pathology", "withheld" if scores.withheld else
              ("not shown" if scores.pathology_note else "not predicted by this model"))],
        pathology_note=scores.pathology_note,
        domain_note=(DOMAIN_OUTSIDE + ": " + "; ".join((result.domain or {}).get("reasons", []))
                     if scores.domain == "outside" else ""),
        mtv_methods=mtv_method_rows(result),
        mtv_methods_short=mtv_method_rows(result, short=True),
        mtv_label=str((result.mtv or {}).get("label", "")),
        lesion_note=(f"Lesion SUVmax: {LESION_SUV_MAX_DEFINITION}, at {format_point(lesion_ras)} RAS (+ in "
                     "the slices)" if lesion_ras is not None else ""),
        withheld=scores.withheld,
        uncertainty=_uncertainty(result),
        location=_location(result),
        gradcam_caption=gradcam_caption,
        gradcam_note=gradcam_note,
        scale_titles={name: f"{name} · {rf.scale_resolution(name, result)}".rstrip(" ·")
                      for name in rf.ordered_scales(scales or [])},
        model_line=f"Model: {model_name}",
        held_out_line=held_out_summary(model),
        footer=f"{RESEARCH_USE} — not a medical device. Findings must be checked against the images "
               "by a qualified reader.",
    )


# --- the PDF page -------------------------------------------------------------------------------

PAGE_W, PAGE_H = 8.27, 11.69          # A4 portrait, inches
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 0.45, 0.40, 0.38
CONTENT_W = PAGE_W - 2 * MARGIN_X
LINE = 0.165                          # table row height (in)
WRAP_STEP = 0.14                      # further lines of a wrapped row (in)
SMALL_STEP = 0.135                    # lines of 7 pt notes (in)
BANNER_FILL, BANNER_EDGE = "#fff4d6", "#c0392b"
LABEL_GREY = "#555555"
MAX_WARNINGS = 4                      # more are counted, and all are in result.json


class _Page:
    """An A4 figure addressed in inches from the top-left corner; ``draw=False`` measures only
    (every call returns the same positions, nothing is drawn)."""

    def __init__(self, draw: bool = True) -> None:
        self.fig = plt.figure(figsize=(PAGE_W, PAGE_H)) if draw else None

    def axes(self, left: float, top: float, width: float, height: float):
        return self.fig.add_axes([left / PAGE_W, 1 - (top + height) / PAGE_H, width / PAGE_W, height / PAGE_H])

    def text(self, x: float, y: float, s: str, **kw: Any) -> None:
        if self.fig is None:
            return
        kw.setdefault("va", "top")
        kw.setdefault("fontsize", 8)
        self.fig.text(x / PAGE_W, 1 - y / PAGE_H, s, **kw)

    def rule(self, x0: float, x1: float, y: float, colour: str = "#999999", width: float = 0.6) -> None:
        if self.fig is None:
            return
        self.fig.add_artist(Line2D([x0 / PAGE_W, x1 / PAGE_W], [1 - y / PAGE_H] * 2, color=colour,
                                   linewidth=width))

    def heading(self, x: float, y: float, width: float, s: str) -> float:
        self.text(x, y, s, fontsize=9, fontweight="bold", color="#1a3a5a")
        self.rule(x, x + width, y + 0.19, colour="#1a3a5a", width=0.7)
        return y + 0.25

    def lines(self, x: float, y: float, text: str, width: float, size: float = 7.0, step: float = SMALL_STEP,
              **kw: Any) -> float:
        """``text`` wrapped to ``width`` inches from ``y`` down; returns the y below it."""
        for line in _wrap(text, width, size, weight=kw.get("fontweight", "normal")):
            self.text(x, y, line, fontsize=size, **kw)
            y += step
        return y


_MEASURE = _Page(draw=False)
_MEASURE_DPI = 300
_RENDERER = RendererAgg(10, 10, _MEASURE_DPI)


@functools.lru_cache(maxsize=8192)
def _width_in(text: str, size: float, weight: str = "normal") -> float:
    """Rendered width of ``text`` in inches at ``size`` pt (the page's font), with 3 % to spare;
    remembered, since the layout is measured before it is drawn and wrapping tries every prefix."""
    width, _, _ = _RENDERER.get_text_width_height_descent(text, FontProperties(size=size, weight=weight),
                                                         ismath=False)
    return 1.03 * width / _MEASURE_DPI


@functools.lru_cache(maxsize=64)
def _space_in(size: float, weight: str = "normal") -> float:
    """Width of the space between two words, in inches (measured between two letters)."""
    return max(0.0, _width_in("x x", size, weight) - 2 * _width_in("x", size, weight))


def _wrap(text: str, width_in: float, size: float = 8.0, max_lines: Optional[int] = None,
          weight: str = "normal") -> list[str]:
    """Greedy word wrap to ``width_in`` inches. Nothing is ever cut: every word is kept, a word wider
    than the width is split over lines (``max_lines`` is accepted for older callers and ignored).
    A line's width is the sum of its words' and spaces' widths (each word measured once, with 3 %
    to spare each), not a measurement of every prefix of the paragraph."""
    lines: list[str] = []
    current, current_w = "", 0.0
    space = _space_in(size, weight)
    for word in _words(str(text or "")):
        word_w = _width_in(word, size, weight)
        trial_w = current_w + space + word_w if current else word_w
        if trial_w <= width_in:
            current, current_w = (f"{current} {word}" if current else word), trial_w
            continue
        if current:
            lines.append(current)
        current, current_w = word, word_w
        while _width_in(current, size, weight) > width_in and len(current) > 1:   # a very long word
            cut = max(1, max(n for n in range(1, len(current) + 1)
                             if n == 1 or _width_in(current[:n], size, weight) <= width_in))
            lines.append(current[:cut])
            current = current[cut:]
            current_w = _width_in(current, size, weight)
    if current:
        lines.append(current)
    return lines


def _words(text: str) -> list[str]:
    """The words of ``text``; "9.6 × 9.6 cm" and "0.72 ± 0.05" stay together on one line."""
    words: list[str] = []
    pending = False
    for word in text.split():
        if words and (pending or word in BINDING):
            words[-1] = f"{words[-1]} {word}"
        else:
            words.append(word)
        pending = word in BINDING
    return words


BINDING = ("×", "±")


def _rows(page: _Page, x: float, y: float, width: float, label_w: float, rows: list[tuple[str, str]],
          bold_values: bool = False, size: float = 8.0, label_size: float = 7.5) -> float:
    """Label / value rows; a long label or value wraps onto further lines of its row."""
    weight = "bold" if bold_values else "normal"
    for label, value in rows:
        labels = _wrap(label, label_w - 0.05, label_size) or [""]
        values = _wrap(value, width - label_w, size, weight=weight) or [""]
        for n, line in enumerate(labels):
            page.text(x, y + n * WRAP_STEP, line, fontsize=label_size, color=LABEL_GREY)
        for n, line in enumerate(values):
            page.text(x + label_w, y + n * WRAP_STEP, line, fontsize=size, fontweight=weight)
        y += LINE + (max(len(labels), len(values)) - 1) * WRAP_STEP
    return y


def _banner_lines(text: ReportText) -> list[tuple[str, str, str, float]]:
    """(line, weight, colour, step): each item's first line a row apart, its further lines closer."""
    width = CONTENT_W - 0.3

    def item(words: str, weight: str, colour: str) -> list[tuple[str, str, str, float]]:
        return [(line, weight, colour, LINE if n == 0 else WRAP_STEP)
                for n, line in enumerate(_wrap(words, width, 8.0, weight=weight))]

    lines = item(f"Intended use: {text.intended_use}", "normal", "#222222")
    if text.edited_note:
        lines += item(text.edited_note, "bold", BANNER_EDGE)
    lines += item(text.edited_mask, "normal", BANNER_EDGE)
    for warning in text.warnings[:MAX_WARNINGS]:
        lines += item(f"Warning: {warning}", "normal", "#7a4a00")
    if len(text.warnings) > MAX_WARNINGS:
        lines += item(f"{len(text.warnings) - MAX_WARNINGS} more warnings: see result.json", "normal", "#7a4a00")
    return lines


def _banner(page: _Page, text: ReportText, top: float) -> float:
    lines = _banner_lines(text)
    height = 0.12 + sum(step for *_, step in lines)
    if page.fig is not None:
        page.fig.add_artist(FancyBboxPatch(
            (MARGIN_X / PAGE_W, 1 - (top + height) / PAGE_H), CONTENT_W / PAGE_W, height / PAGE_H,
            boxstyle="round,pad=0,rounding_size=0.004", facecolor=BANNER_FILL, edgecolor=BANNER_EDGE,
            linewidth=1.2, transform=page.fig.transFigure))
    y = top + 0.07 - LINE
    for line, weight, colour, step in lines:
        y += step
        page.text(MARGIN_X + 0.15, y, line, fontsize=8, fontweight=weight, color=colour)
    return top + height


def _header(page: _Page, text: ReportText) -> float:
    page.text(MARGIN_X, MARGIN_TOP, text.title, fontsize=15, fontweight="bold", color="#1a3a5a")
    page.text(PAGE_W - MARGIN_X, MARGIN_TOP + 0.02, text.subtitle, fontsize=8, ha="right", color=LABEL_GREY)
    page.text(PAGE_W - MARGIN_X, MARGIN_TOP + 0.2, RESEARCH_USE.upper(), fontsize=8, ha="right",
              fontweight="bold", color=BANNER_EDGE)
    return _banner(page, text, MARGIN_TOP + 0.42)


def _facts_block(page: _Page, text: ReportText, top: float) -> float:
    y = page.heading(MARGIN_X, top, CONTENT_W, "Patient and series")
    half = (len(text.facts) + 1) // 2
    column_w = (CONTENT_W - 0.2) / 2
    left = _rows(page, MARGIN_X, y, column_w, 0.85, text.facts[:half])
    right = _rows(page, MARGIN_X + column_w + 0.2, y, column_w, 0.85, text.facts[half:])
    return max(left, right)


def _domain_line(text: ReportText) -> str:
    """The domain note of the scores; its reasons only once on the page when a warning gives them."""
    reasons = text.domain_note.split(": ", 1)[-1]
    if reasons and any(reasons in w for w in text.warnings[:MAX_WARNINGS]):
        return f"{DOMAIN_OUTSIDE} (why: see the warning above)"
    return text.domain_note


def _tables_height(text: ReportText) -> float:
    return _tables(_MEASURE, text, RIGHT_X, 0.0, RIGHT_W)


def _tables(page: _Page, text: ReportText, x: float, top: float, width: float) -> float:
    left_w, gap = 2.3, 0.2
    right_x, right_w = x + left_w + gap, width - left_w - gap
    y = page.heading(x, top, left_w, "PET metrics")
    for name, value, unit in text.metrics:
        page.text(x, y, name, fontsize=7.5, color=LABEL_GREY)
        page.text(x + 1.25, y, value, fontsize=8.5, fontweight="bold", ha="right")
        page.text(x + 1.32, y, unit, fontsize=7.5, color=LABEL_GREY)
        y += LINE
    if text.mtv_label:
        y = page.lines(x, y, f"MTV: {text.mtv_label}", left_w, color=LABEL_GREY)
    if text.lesion_note:
        y = page.lines(x, y + 0.03, text.lesion_note, left_w, color=LABEL_GREY)
    left_bottom = y
    y = page.heading(right_x, top, right_w, "Scores")
    label_w = 1.6
    if text.domain_note:
        y = page.lines(right_x, y, _domain_line(text), right_w, color=BANNER_EDGE, fontweight="bold")
    y = _rows(page, right_x, y, right_w, label_w, [text.outcome], bold_values=True)
    if text.outcome_meaning:
        y = page.lines(right_x, y, text.outcome_meaning, right_w, color=LABEL_GREY)
    y = _rows(page, right_x, y, right_w, label_w, text.pathology)
    if text.pathology_note:
        y = page.lines(right_x, y, f"Pathology {text.pathology_note}", right_w, color=LABEL_GREY)
    if text.withheld:
        y = page.lines(right_x, y, f"Withheld: {text.withheld}", right_w, color=BANNER_EDGE)
    y = page.lines(right_x, y, f"Uncertainty: {text.uncertainty}", right_w, color=LABEL_GREY)
    y = max(left_bottom, y) + 0.12
    y = page.heading(x, y, width, "Location")
    return _rows(page, x, y, width, 1.2, text.location)


@dataclass
class _Layout:
    """Sizes (in) of the middle block and the Grad-CAM block, the heatmap rows, and what goes
    beside the heatmaps (``aside``: "note+guide", "guide" or ""; the rest goes under the heading)."""

    slice_panel: float
    heat_panel: float
    middle_h: float
    gradcam_h: float
    heat_rows: list[list[str]] = field(default_factory=list)
    aside: str = "guide"


RIGHT_X = MARGIN_X + 1.85 + 0.22                  # left edge of the slices and tables column
RIGHT_W = PAGE_W - MARGIN_X - RIGHT_X
MIP_W = RIGHT_X - 0.22 - MARGIN_X
SLICE_GAP, HEAT_GAP, HEAT_BAR_W = 0.12, 0.1, 0.55
SLICE_FLOOR = 0.7                                 # the smallest slices (in) of a page full of text


def _slice_caption(views: rf.Views) -> str:
    side = number(views.field() / 10.0, 1)
    return (f"MTV contour red · + lesion's hottest voxel · SUV 0–{views.window:g}, inverted grey · "
            f"field of view {side} × {side} cm")


def _slice_fixed(views: rf.Views) -> float:
    """Heading, view titles and caption of the slices (in)."""
    return 0.25 + 0.2 + 0.06 + SMALL_STEP * len(_wrap(_slice_caption(views), RIGHT_W, 7.0)) + 0.1


def _aside_text(text: ReportText, aside: str) -> str:
    return {"note+guide": f"{rf.HEATMAP_GUIDE_SHORT} {text.gradcam_note}".strip(),
            "guide": rf.HEATMAP_GUIDE_SHORT}.get(aside, "")


def _gradcam_caption_lines(text: ReportText, aside: str) -> list[str]:
    """The lines under the Grad-CAM heading: the caption and whatever does not go beside the panels."""
    rest = [] if "note" in aside else [text.gradcam_note]
    rest += [] if "guide" in aside else [rf.HEATMAP_GUIDE_SHORT]
    return _wrap(text.gradcam_caption, CONTENT_W, 7.0) + _wrap(" ".join(rest), CONTENT_W, 7.0)


def _gradcam_height(text: ReportText, rows: int, panel: float, aside: str) -> float:
    if not rows:
        return 0.25 + LINE + 0.05
    captions = len(_gradcam_caption_lines(text, aside))
    return 0.25 + SMALL_STEP * captions + 0.07 + 0.19 + rows * panel + (rows - 1) * 0.25 + 0.05


def _layout(text: ReportText, views: rf.Views, available: float, names: list[str]) -> _Layout:
    """Panel sizes that fill ``available`` inches, largest first. When the page is full the
    heatmaps shrink first, then the slices; then the heatmap texts move under the heading, then the
    heatmaps go on one row, and last the slices shrink to their floor."""
    slice_max, slice_min = (RIGHT_W - 2 * SLICE_GAP) / 3, 1.1
    heat_max, heat_min = min(1.28, (CONTENT_W - HEAT_BAR_W - 4 * HEAT_GAP) / 5), 0.85
    middle_fixed = _slice_fixed(views) + _tables_height(text)
    two_rows = _heat_rows(names)
    one_row = [rf.ordered_scales(names)] if names else []
    one_panel = min(heat_max, (CONTENT_W - HEAT_BAR_W - (len(names) - 1) * HEAT_GAP) / max(1, len(names)))
    modes = [(two_rows, aside, heat_max, heat_min) for aside in ("note+guide", "guide", "")]
    modes.append((one_row, "", one_panel, one_panel))
    layout = None
    for rows, aside, top_size, low_size in modes:
        n = len(rows)
        heat_fixed = _gradcam_height(text, n, 0.0, aside)
        short = max(0.0, middle_fixed + slice_max + 0.1 + heat_fixed + n * top_size - available)
        heat_cut = min(short / n, top_size - low_size) if n else 0.0
        short -= n * heat_cut
        slice_cut = min(short, slice_max - slice_min)
        short -= slice_cut
        heat_panel, slice_panel = top_size - heat_cut, slice_max - slice_cut
        if short > 0 and (rows, aside) == modes[-1][:2]:
            slice_panel = max(SLICE_FLOOR, slice_panel - short)
        gradcam_h = heat_fixed + n * heat_panel
        layout = _Layout(slice_panel, heat_panel, available - gradcam_h - 0.1, gradcam_h, rows, aside)
        if not names:
            return layout
        if short <= 0 and (not aside or _guide_fit(rows, heat_panel, _aside_text(text, aside)) is not None):
            return layout
    return layout  # type: ignore[return-value]


def _method_rows(page: _Page, text: ReportText, top: float) -> float:
    y = page.heading(MARGIN_X, top, MIP_W, "MTV by method")
    return _rows(page, MARGIN_X, y, MIP_W, 0.82, text.mtv_methods_short, size=7.0, label_size=7.0)


MIP_LEGEND = ("Red box: analysed MTV", "Blue circles: other candidates (rank)")


def _images(page: _Page, views: rf.Views, result: AnalysisResult, text: ReportText, top: float,
            layout: _Layout) -> None:
    methods_h = (_method_rows(_MEASURE, text, 0.0) + 0.02) if text.mtv_methods_short else 0.0
    legend_h = 0.1 + SMALL_STEP * len(MIP_LEGEND)
    page.heading(MARGIN_X, top, MIP_W, f"Coronal MIP (SUV 0–{views.window:g})")
    ax = page.axes(MARGIN_X, top + 0.3, MIP_W, layout.middle_h - 0.3 - legend_h - methods_h)
    ax.set_anchor("N")                      # before drawing: the rank labels are placed in the final frame
    rf.draw_mip(ax, views, result)
    ax.set_title("")
    y = top + layout.middle_h - legend_h - methods_h + 0.04
    for line in MIP_LEGEND:
        page.text(MARGIN_X, y, line, fontsize=7, color=LABEL_GREY)
        y += SMALL_STEP
    if text.mtv_methods_short:
        _method_rows(page, text, top + layout.middle_h - methods_h + 0.02)
    x, width, panel = RIGHT_X, RIGHT_W, layout.slice_panel
    y = page.heading(x, top, width, "Slices through the lesion's hottest voxel" if views.mask_box is not None
                     else "Slices through the lesion centre (the MTV is empty)")
    for n, which in enumerate(("axial", "coronal", "sagittal")):
        rf.draw_slice(page.axes(x + n * (panel + SLICE_GAP), y + 0.2, panel, panel), views, which,
                      which.capitalize())
    y += 0.2 + panel + 0.06
    y = page.lines(x, y, _slice_caption(views), width, color=LABEL_GREY)
    _tables(page, text, x, y + 0.1, width)


def _heat_rows(names: list[str]) -> list[list[str]]:
    rows = ([n for n in names if not n.startswith("dec")], [n for n in names if n.startswith("dec")])
    return [r for r in rows if r]


def _gradcam(page: _Page, views: rf.Views, text: ReportText, top: float, layout: _Layout) -> None:
    y = page.heading(MARGIN_X, top, CONTENT_W, "Grad-CAM heatmaps per network scale")
    rows = layout.heat_rows
    if not rows:
        page.text(MARGIN_X, y, "No heatmaps were computed.", fontsize=8)
        return
    y -= 0.02
    for line in _gradcam_caption_lines(text, layout.aside):
        page.text(MARGIN_X, y, line, fontsize=7, color=LABEL_GREY)
        y += SMALL_STEP
    y += 0.09
    panel = layout.heat_panel
    for r, row in enumerate(rows):
        for c, name in enumerate(row):
            rf.draw_heatmap(page.axes(MARGIN_X + c * (panel + HEAT_GAP), y + 0.19 + r * (panel + 0.25),
                                      panel, panel), views, name, text.scale_titles.get(name, name))
    columns = max(len(r) for r in rows)
    bar_x = MARGIN_X + columns * (panel + HEAT_GAP) + 0.05
    rf.heat_colourbar(page.axes(bar_x, y + 0.19, 0.12, len(rows) * (panel + 0.25) - 0.25))
    if layout.aside:
        _heatmap_guide(page, rows, panel, y + 0.19, _aside_text(text, layout.aside))


def _guide_spot(rows: list[list[str]], panel: float, top: float = 0.0
                ) -> Optional[tuple[float, float, float, float]]:
    """Where text can go beside the heatmaps (x, y, width, height in): right of the colour bar where
    there is room, else in the empty cells of the decoder row."""
    columns = max(len(r) for r in rows)
    right_x = MARGIN_X + columns * (panel + HEAT_GAP) + 0.05 + 0.75
    if PAGE_W - MARGIN_X - right_x >= 1.2:
        return right_x, top, PAGE_W - MARGIN_X - right_x, len(rows) * (panel + 0.25) - 0.25
    if len(rows) == 2 and len(rows[1]) < columns:
        return (MARGIN_X + len(rows[1]) * (panel + HEAT_GAP) + 0.05, top + panel + 0.08,
                (columns - len(rows[1])) * (panel + HEAT_GAP) - 0.1, panel + 0.17)
    return None


def _guide_fit(rows: list[list[str]], panel: float, words: str) -> Optional[tuple[list[str], float]]:
    """The lines and font size of ``words`` where all of it fits beside the heatmaps, else None."""
    spot = _guide_spot(rows, panel)
    if spot is None or not words:
        return None
    _, _, width, height = spot
    for size in (7.0, 6.5):
        lines = _wrap(words, width, size)
        if len(lines) * size / 7.0 * SMALL_STEP <= height:
            return lines, size
    return None


def _heatmap_guide(page: _Page, rows: list[list[str]], panel: float, top: float, words: str) -> None:
    """How to read the heatmaps, beside the panels (the layout checked that all of it fits)."""
    spot, fit = _guide_spot(rows, panel, top), _guide_fit(rows, panel, words)
    if spot is None or fit is None:
        return
    x, y = spot[0], spot[1]
    lines, size = fit
    for line in lines:
        page.text(x, y, line, fontsize=size, color="#333333")
        y += size / 7.0 * SMALL_STEP


def _footer_lines(text: ReportText) -> list[str]:
    return _wrap(" · ".join(part for part in (text.model_line, text.held_out_line) if part), CONTENT_W, 7.5)


def _footer_height(text: ReportText) -> float:
    return LINE * (len(_footer_lines(text)) + len(_wrap(text.footer, CONTENT_W - 0.6, 7.5, weight="bold"))) + 0.08


def _footer(page: _Page, text: ReportText) -> None:
    y = PAGE_H - MARGIN_BOTTOM - _footer_height(text)
    page.rule(MARGIN_X, PAGE_W - MARGIN_X, y - 0.05)
    for line in _footer_lines(text):
        page.text(MARGIN_X, y, line, fontsize=7.5, color="#333333")
        y += LINE
    page.text(PAGE_W - MARGIN_X, y, "page 1/1", fontsize=7, ha="right", color=LABEL_GREY)
    for line in _wrap(text.footer, CONTENT_W - 0.6, 7.5, weight="bold"):
        page.text(MARGIN_X, y, line, fontsize=7.5, fontweight="bold", color=BANNER_EDGE)
        y += LINE


def report_page(views: rf.Views, result: AnalysisResult, text: ReportText) -> plt.Figure:
    """The whole report as one A4 matplotlib figure."""
    page = _Page()
    y = _header(page, text) + 0.12
    y = _facts_block(page, text, y) + 0.1
    layout = _layout(text, views, PAGE_H - MARGIN_BOTTOM - _footer_height(text) - 0.12 - y, list(views.heatmaps))
    _images(page, views, result, text, y, layout)
    _gradcam(page, views, text, y + layout.middle_h + 0.1, layout)
    _footer(page, text)
    return page.fig


def _views(result: AnalysisResult, pet: PetVolume, mask: np.ndarray, heatmaps: dict[str, np.ndarray]) -> rf.Views:
    loc = result.location
    return rf.prepare_views(pet, mask, heatmaps, loc.center_lps, loc.field_center_lps,
                            loc.crop_size_mm if loc.field_center_lps is not None else None)


def report_figure(result: AnalysisResult, pet: PetVolume, mask: np.ndarray,
                  heatmaps: dict[str, np.ndarray]) -> plt.Figure:
    """The report page as a matplotlib figure (e.g. to save a PNG preview)."""
    views = _views(result, pet, mask, heatmaps)
    return report_page(views, result, report_text(result, pet, list(views.heatmaps), views))


def write_report(result: AnalysisResult, pet: PetVolume, mask: np.ndarray, heatmaps: dict[str, np.ndarray],
                 out_dir: Path, basename: str = "report") -> tuple[Path, Path]:
    """Write ``out_dir/<basename>.pdf`` (one A4 page) and ``out_dir/<basename>.html``; return their paths.

    Args:
        result: the analysis result to report.
        pet: the PET volume in SUV.
        mask: uint8 (z, y, x) MTV on the PET grid.
        heatmaps: scale name ('enc1'..'enc5', 'dec4'..'dec1') -> float (z, y, x) in [0, 1] on the
            PET grid (zero outside the analysed crop).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    views = _views(result, pet, mask, heatmaps)
    text = report_text(result, pet, list(views.heatmaps), views)
    pdf_path, html_path = out_dir / f"{basename}.pdf", out_dir / f"{basename}.html"
    fig = report_page(views, result, text)
    try:
        with PdfPages(pdf_path, metadata={"Title": TITLE, "Subject": text.intended_use,
                                          "Creator": f"MTLRadiomics {result.engine_version}"}) as pdf:
            pdf.savefig(fig)
    finally:
        plt.close(fig)
    mip = rf.png_base64(rf.mip_figure(views, result))
    slices = rf.png_base64(rf.slices_figure(views))
    gradcam = rf.png_base64(rf.gradcam_figure(views, result)) if views.heatmaps else ""
    html_path.write_text(render_html(text, mip, slices, gradcam, views.window, views.field(),
                                     views.mask_box is not None, _slice_caption(views)), encoding="utf-8")
    return pdf_path, html_path
