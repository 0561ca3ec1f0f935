"""The one-page report a physician reads: an A4 PDF and a self-contained, printable HTML page.

Both show the same content: intended-use banner, patient and series facts, coronal MIP with the
analysed lesion and the other candidates, slices through the MTV, Grad-CAM heatmaps per scale,
PET metrics, scores with their uncertainty, how the lesion was located, and the model's held-out
performance.
"""

from __future__ import annotations

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
from MTLRadiomicsLib.analysis.result import AnalysisResult, Estimate  # noqa: E402
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume  # noqa: E402

TITLE = "MTLRadiomics PET analysis"
DASH = "—"
EDITED_NOTE = "MTV edited by the user; scores re-computed"
RESEARCH_USE = "Research use only"
DEFAULT_INTENDED_USE = "Research use only. Not for clinical use."

DOMAIN_OUTSIDE = "Outside the model's training domain"
OUTCOME_LABELS = {"binary": "Response probability", "survival": "Risk (log relative hazard)"}
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
    withheld: str = ""
    pathology_note: str = ""
    domain_note: str = ""
    scale_titles: dict[str, str] = field(default_factory=dict)
    model_line: str = ""
    held_out_line: str = ""
    footer: str = RESEARCH_USE
    edited_mask: str = ""                           # a rescore's mask: file name and SHA-256


# --- formatting -------------------------------------------------------------------------------

def format_metric(key: str, value: Optional[float]) -> str:
    """SUVs with two decimals; MTV and TLG with one decimal from 10 upwards, else two."""
    if value is None or not np.isfinite(float(value)):
        return DASH
    value = float(value)
    if key.startswith("suv"):
        return f"{value:.2f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


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
    if est is None:
        return DASH
    return est.text() if np.isfinite(est.mean) and np.isfinite(est.sd) else DASH


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
        return OUTCOME_LABELS.get(result.scores.outcome_kind, "outcome score").lower()
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
    ras = ", ".join(f"{float(c):.1f}" for c in loc.center_ras)
    crop = " × ".join(f"{float(c):g}" for c in loc.crop_size_mm) if loc.crop_size_mm else ""
    rows = [
        ("Method", LOCATION_METHODS.get(loc.method, _or_dash(loc.method))),
        ("Centre (RAS)", f"({ras}) mm"),
        ("Analysed crop", f"{crop} mm" if crop else DASH),
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


def held_out_summary(model: dict[str, Any]) -> str:
    """One line of the model's held-out metrics and the data they were measured on: the
    cross-validation if present, else the test split, else validation."""
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
    where = str(values.get("data") or split.replace("_", " "))
    return f"Held-out performance ({where}{f', n = {n}' if n else ''}): " + " · ".join(parts)


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


def report_text(result: AnalysisResult, pet: Optional[PetVolume] = None,
                scales: Optional[list[str]] = None) -> ReportText:
    """All texts of the report from the result (and the PET's series facts and heatmap scales)."""
    scores, metrics = result.scores, result.metrics or {}
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
        metrics=[("SUVmax", format_metric("suv_max", metrics.get("suv_max")), "g/ml"),
                 ("SUVpeak", format_metric("suv_peak", metrics.get("suv_peak")), "g/ml"),
                 ("SUVmean", format_metric("suv_mean", metrics.get("suv_mean")), "g/ml"),
                 ("MTV", format_metric("mtv_ml", metrics.get("mtv_ml")), "ml"),
                 ("TLG", format_metric("tlg", metrics.get("tlg")), "g")],
        outcome=(OUTCOME_LABELS.get(scores.outcome_kind, scores.outcome_kind.capitalize() or "Outcome"),
                 "withheld" if scores.withheld else _estimate(scores.outcome)),
        outcome_meaning=_meaning(scores.outcome_meaning, OUTCOME_LABELS.get(scores.outcome_kind, "")),
        pathology=([] if scores.withheld else
                   ([("Survival risk (log HR)", _estimate(scores.survival))] if scores.survival is not None else [])
                   + [(f"Pathology: {name}", _estimate(est)) for name, est in scores.pathology.items()])
        or [("Pathology", "withheld" if scores.withheld else "not predicted by this model")],
        pathology_note=scores.pathology_note,
        domain_note=(DOMAIN_OUTSIDE + ": " + "; ".join((result.domain or {}).get("reasons", []))
                     if scores.domain == "outside" else ""),
        mtv_methods=mtv_method_rows(result),
        mtv_methods_short=mtv_method_rows(result, short=True),
        mtv_label=str((result.mtv or {}).get("label", "")),
        withheld=scores.withheld,
        uncertainty=_uncertainty(result),
        location=_location(result),
        gradcam_caption=f"Target: {_target(result)} · axial slice through SUVmax · MTV contour white · "
                        "mm = voxel size of the scale's feature map",
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
FOOTER_H = 3 * LINE + 0.08
BANNER_FILL, BANNER_EDGE = "#fff4d6", "#c0392b"
LABEL_GREY = "#555555"


class _Page:
    """An A4 figure addressed in inches from the top-left corner."""

    def __init__(self) -> None:
        self.fig = plt.figure(figsize=(PAGE_W, PAGE_H))

    def axes(self, left: float, top: float, width: float, height: float):
        return self.fig.add_axes([left / PAGE_W, 1 - (top + height) / PAGE_H, width / PAGE_W, height / PAGE_H])

    def text(self, x: float, y: float, s: str, **kw: Any) -> None:
        kw.setdefault("va", "top")
        kw.setdefault("fontsize", 8)
        self.fig.text(x / PAGE_W, 1 - y / PAGE_H, s, **kw)

    def rule(self, x0: float, x1: float, y: float, colour: str = "#999999", width: float = 0.6) -> None:
        self.fig.add_artist(Line2D([x0 / PAGE_W, x1 / PAGE_W], [1 - y / PAGE_H] * 2, color=colour,
                                   linewidth=width))

    def heading(self, x: float, y: float, width: float, s: str) -> float:
        self.text(x, y, s, fontsize=9, fontweight="bold", color="#1a3a5a")
        self.rule(x, x + width, y + 0.19, colour="#1a3a5a", width=0.7)
        return y + 0.25


_MEASURE_DPI = 300
_RENDERER = RendererAgg(10, 10, _MEASURE_DPI)


def _width_in(text: str, size: float, weight: str = "normal") -> float:
    """Rendered width of ``text`` in inches at ``size`` pt (the page's font), with 3 % to spare."""
    width, _, _ = _RENDERER.get_text_width_height_descent(text, FontProperties(size=size, weight=weight),
                                                         ismath=False)
    return 1.03 * width / _MEASURE_DPI


def _fit(text: str, width_in: float, size: float = 8.0, weight: str = "normal") -> str:
    """``text``, shortened with an ellipsis where it would be wider than ``width_in`` inches."""
    if _width_in(text, size, weight) <= width_in:
        return text
    lo, hi = 0, len(text)
    while lo < hi:                                # longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if _width_in(text[:mid].rstrip() + "…", size, weight) <= width_in:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


def _wrap(text: str, width_in: float, size: float = 8.0, max_lines: int = 3, weight: str = "normal") -> list[str]:
    """Greedy word wrap to ``width_in`` inches; the last line is shortened if more would follow."""
    lines: list[str] = []
    current = ""
    words = text.split()
    for n, word in enumerate(words):
        trial = f"{current} {word}".strip()
        if current and _width_in(trial, size, weight) > width_in:
            lines.append(current)
            current = word
            if len(lines) == max_lines - 1:
                current = " ".join(words[n:])
                break
        else:
            current = trial
    if current:
        lines.append(_fit(current, width_in, size, weight))
    return lines


def _rows(page: _Page, x: float, y: float, width: float, label_w: float, rows: list[tuple[str, str]],
          bold_values: bool = False) -> float:
    for label, value in rows:
        weight = "bold" if bold_values else "normal"
        page.text(x, y, _fit(label, label_w - 0.05, 7.5), fontsize=7.5, color=LABEL_GREY)
        page.text(x + label_w, y, _fit(value, width - label_w, 8.0, weight), fontsize=8, fontweight=weight)
        y += LINE
    return y


def _banner(page: _Page, text: ReportText, top: float) -> float:
    lines = [(line, "normal", "#222222") for line in
             _wrap(f"Intended use: {text.intended_use}", CONTENT_W - 0.3, 8.0, max_lines=3)]
    if text.edited_note:
        lines.append((text.edited_note, "bold", BANNER_EDGE))
    lines += [(line, "normal", BANNER_EDGE) for line in _wrap(text.edited_mask, CONTENT_W - 0.3, 8.0, max_lines=2)]
    for warning in text.warnings[:3]:
        lines.append((_fit(f"Warning: {warning}", CONTENT_W - 0.3, 8.0), "normal", "#7a4a00"))
    if len(text.warnings) > 3:
        lines.append((f"… and {len(text.warnings) - 3} more warnings (see result.json)", "normal", "#7a4a00"))
    height = 0.12 + LINE * len(lines)
    page.fig.add_artist(FancyBboxPatch(
        (MARGIN_X / PAGE_W, 1 - (top + height) / PAGE_H), CONTENT_W / PAGE_W, height / PAGE_H,
        boxstyle="round,pad=0,rounding_size=0.004", facecolor=BANNER_FILL, edgecolor=BANNER_EDGE,
        linewidth=1.2, transform=page.fig.transFigure))
    y = top + 0.07
    for line, weight, colour in lines:
        page.text(MARGIN_X + 0.15, y, line, fontsize=8, fontweight=weight, color=colour)
        y += LINE
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
    bottom = _rows(page, MARGIN_X, y, column_w, 0.85, text.facts[:half])
    _rows(page, MARGIN_X + column_w + 0.2, y, column_w, 0.85, text.facts[half:])
    return bottom


def _score_rows(text: ReportText) -> int:
    return (3 + bool(text.outcome_meaning) + len(text.pathology) + (2 if text.withheld else 0)
            + (2 if text.pathology_note else 0) + (2 if text.domain_note else 0))


def _tables_height(text: ReportText) -> float:
    return (0.25 + max(len(text.metrics) + bool(text.mtv_label), _score_rows(text)) * LINE + 0.12 + 0.25
            + len(text.location) * LINE)


def _tables(page: _Page, text: ReportText, x: float, top: float, width: float) -> float:
    left_w, gap = 1.85, 0.2
    right_x, right_w = x + left_w + gap, width - left_w - gap
    y = page.heading(x, top, left_w, "PET metrics (MTV)")
    for name, value, unit in text.metrics:
        page.text(x, y, name, fontsize=7.5, color=LABEL_GREY)
        page.text(x + 1.05, y, value, fontsize=8.5, fontweight="bold", ha="right")
        page.text(x + 1.12, y, unit, fontsize=7.5, color=LABEL_GREY)
        y += LINE
    if text.mtv_label:
        page.text(x, y, _fit(f"MTV: {text.mtv_label}", left_w, 7.0), fontsize=7, color=LABEL_GREY)
        y += LINE
    left_bottom = y
    y = page.heading(right_x, top, right_w, "Scores")
    label_w = 1.75
    if text.domain_note:
        for line in _wrap(text.domain_note, right_w, 7.0, max_lines=2):
            page.text(right_x, y, line, fontsize=7, color=BANNER_EDGE, fontweight="bold")
            y += LINE
    y = _rows(page, right_x, y, right_w, label_w, [text.outcome], bold_values=True)
    if text.outcome_meaning:
        page.text(right_x, y, _fit(text.outcome_meaning, right_w, 7.0), fontsize=7, color=LABEL_GREY)
        y += LINE
    y = _rows(page, right_x, y, right_w, label_w, text.pathology)
    if text.pathology_note:
        for line in _wrap(f"Pathology {text.pathology_note}", right_w, 7.0, max_lines=2):
            page.text(right_x, y, line, fontsize=7, color=LABEL_GREY)
            y += LINE
    if text.withheld:
        for line in _wrap(f"Withheld: {text.withheld}", right_w, 7.0, max_lines=3):
            page.text(right_x, y, line, fontsize=7, color=BANNER_EDGE)
            y += LINE
    for line in _wrap(f"Uncertainty: {text.uncertainty}", right_w, 7.0, max_lines=2):
        page.text(right_x, y, line, fontsize=7, color=LABEL_GREY)
        y += LINE
    y = max(left_bottom, y) + 0.12
    y = page.heading(x, y, width, "Location")
    return _rows(page, x, y, width, 1.2, text.location)


@dataclass
class _Layout:
    """Vertical sizes (in) of the middle block and the Grad-CAM block."""

    slice_panel: float
    heat_panel: float
    middle_h: float
    gradcam_h: float


RIGHT_X = MARGIN_X + 2.15 + 0.22                  # left edge of the slices and tables column
RIGHT_W = PAGE_W - MARGIN_X - RIGHT_X
SLICE_GAP, HEAT_GAP, HEAT_BAR_W = 0.12, 0.1, 0.55
SLICE_FIXED = 0.25 + 0.2 + 0.3                     # heading, view titles, caption


def _layout(text: ReportText, available: float, heat_rows: int) -> _Layout:
    """Panel sizes that fill ``available`` inches: largest first, shrunk together when short."""
    slice_max, slice_min = (RIGHT_W - 2 * SLICE_GAP) / 3, 1.1
    heat_max, heat_min = min(1.28, (CONTENT_W - HEAT_BAR_W - 4 * HEAT_GAP) / 5), 0.85
    heat_fixed = 0.45 + 0.25 * heat_rows if heat_rows else 0.45 + LINE
    middle_fixed = SLICE_FIXED + _tables_height(text)
    short = max(0.0, middle_fixed + slice_max + 0.1 + heat_fixed + heat_rows * heat_max - available)
    heat_cut = min(short / heat_rows, heat_max - heat_min) if heat_rows else 0.0   # heatmaps give way first
    heat_panel = heat_max - heat_cut
    slice_panel = max(slice_min, slice_max - (short - heat_rows * heat_cut))
    gradcam_h = heat_fixed + heat_rows * heat_panel
    return _Layout(slice_panel, heat_panel, available - gradcam_h - 0.1, gradcam_h)


def _images(page: _Page, views: rf.Views, result: AnalysisResult, text: ReportText, top: float,
            layout: _Layout) -> None:
    mip_w = RIGHT_X - 0.22 - MARGIN_X
    methods_h = (0.3 + LINE * len(text.mtv_methods_short)) if text.mtv_methods_short else 0.0
    page.heading(MARGIN_X, top, mip_w, f"Coronal MIP (SUV 0–{views.window:g})")
    ax = page.axes(MARGIN_X, top + 0.3, mip_w, layout.middle_h - 0.3 - 0.42 - methods_h)
    rf.draw_mip(ax, views, result)
    ax.set_title("")
    ax.set_anchor("N")
    page.text(MARGIN_X, top + layout.middle_h - 0.36 - methods_h,
              "Red box: analysed MTV\nBlue circles: other candidates (rank)",
              fontsize=7, color=LABEL_GREY, linespacing=1.4)
    if text.mtv_methods_short:
        y = page.heading(MARGIN_X, top + layout.middle_h - methods_h + 0.02, mip_w, "MTV by method")
        for label, value in text.mtv_methods_short:
            page.text(MARGIN_X, y, _fit(label, 0.95, 7.0), fontsize=7, color=LABEL_GREY)
            page.text(MARGIN_X + 0.97, y, _fit(value, mip_w - 0.97, 7.0), fontsize=7)
            y += LINE
    x, width, panel = RIGHT_X, RIGHT_W, layout.slice_panel
    y = page.heading(x, top, width, "Slices through the SUVmax of the MTV" if views.mask_box is not None
                     else "Slices through the lesion centre (the MTV is empty)")
    for n, which in enumerate(("axial", "coronal", "sagittal")):
        rf.draw_slice(page.axes(x + n * (panel + SLICE_GAP), y + 0.2, panel, panel), views, which,
                      which.capitalize())
    y += 0.2 + panel + 0.06
    page.text(x, y, f"MTV contour red · SUV 0–{views.window:g}, inverted grey · "
                    f"{views.field() / 10:g} cm field", fontsize=7, color=LABEL_GREY)
    _tables(page, text, x, y + 0.24, width)


def _heat_rows(names: list[str]) -> list[list[str]]:
    rows = ([n for n in names if not n.startswith("dec")], [n for n in names if n.startswith("dec")])
    return [r for r in rows if r]


def _gradcam(page: _Page, views: rf.Views, text: ReportText, top: float, layout: _Layout) -> None:
    y = page.heading(MARGIN_X, top, CONTENT_W, "Grad-CAM heatmaps per network scale")
    page.text(MARGIN_X, y - 0.02, _fit(text.gradcam_caption, CONTENT_W, 7.0), fontsize=7, color=LABEL_GREY)
    y += 0.2
    rows = _heat_rows(list(views.heatmaps))
    if not rows:
        page.text(MARGIN_X, y, "No heatmaps were computed.", fontsize=8)
        return
    panel = layout.heat_panel
    for r, row in enumerate(rows):
        for c, name in enumerate(row):
            rf.draw_heatmap(page.axes(MARGIN_X + c * (panel + HEAT_GAP), y + 0.19 + r * (panel + 0.25),
                                      panel, panel), views, name, text.scale_titles.get(name, name))
    columns = max(len(r) for r in rows)
    bar_x = MARGIN_X + columns * (panel + HEAT_GAP) + 0.05
    rf.heat_colourbar(page.axes(bar_x, y + 0.19, 0.12, len(rows) * (panel + 0.25) - 0.25))
    _heatmap_guide(page, rows, columns, panel, y + 0.19, bar_x + 0.75)


def _heatmap_guide(page: _Page, rows: list[list[str]], columns: int, panel: float, top: float,
                   right_x: float) -> None:
    """How to read the heatmaps: right of the colour bar where there is room, else in the empty
    cell of the decoder row."""
    if PAGE_W - MARGIN_X - right_x >= 1.2:
        x, y, width, height = right_x, top, PAGE_W - MARGIN_X - right_x, len(rows) * (panel + 0.25) - 0.25
    elif len(rows) == 2 and len(rows[1]) < columns:
        x, y = MARGIN_X + len(rows[1]) * (panel + HEAT_GAP) + 0.05, top + panel + 0.08
        width, height = (columns - len(rows[1])) * (panel + HEAT_GAP) - 0.1, panel + 0.17
    else:
        return
    lines = _wrap(rf.HEATMAP_GUIDE_SHORT, width, 7.0, max_lines=max(1, int(height / 0.135)))
    for line in lines:
        page.text(x, y, line, fontsize=7, color="#333333")
        y += 0.135


def _footer(page: _Page, text: ReportText) -> None:
    y = PAGE_H - MARGIN_BOTTOM - FOOTER_H
    page.rule(MARGIN_X, PAGE_W - MARGIN_X, y - 0.05)
    for line in filter(None, (text.model_line, text.held_out_line)):
        page.text(MARGIN_X, y, _fit(line, CONTENT_W, 7.5), fontsize=7.5, color="#333333")
        y += LINE
    page.text(MARGIN_X, y, _fit(text.footer, CONTENT_W - 0.5, 7.5), fontsize=7.5,
              fontweight="bold", color=BANNER_EDGE)
    page.text(PAGE_W - MARGIN_X, y, "page 1/1", fontsize=7, ha="right", color=LABEL_GREY)


def report_page(views: rf.Views, result: AnalysisResult, text: ReportText) -> plt.Figure:
    """The whole report as one A4 matplotlib figure."""
    page = _Page()
    y = _header(page, text) + 0.12
    y = _facts_block(page, text, y) + 0.1
    heat_rows = len(_heat_rows(list(views.heatmaps)))
    layout = _layout(text, PAGE_H - MARGIN_BOTTOM - FOOTER_H - 0.12 - y, heat_rows)
    _images(page, views, result, text, y, layout)
    _gradcam(page, views, text, y + layout.middle_h + 0.1, layout)
    _footer(page, text)
    return page.fig


def report_figure(result: AnalysisResult, pet: PetVolume, mask: np.ndarray,
                  heatmaps: dict[str, np.ndarray]) -> plt.Figure:
    """The report page as a matplotlib figure (e.g. to save a PNG preview)."""
    views = rf.prepare_views(pet, mask, heatmaps, result.location.center_lps)
    return report_page(views, result, report_text(result, pet, list(views.heatmaps)))


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
    views = rf.prepare_views(pet, mask, heatmaps, result.location.center_lps)
    text = report_text(result, pet, list(views.heatmaps))
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
                                     views.mask_box is not None), encoding="utf-8")
    return pdf_path, html_path
