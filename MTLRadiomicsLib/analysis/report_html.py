"""The report as one self-contained HTML page: figures embedded as base64 PNG, tables as HTML
tables, plain CSS that prints on A4."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from MTLRadiomicsLib.analysis.report_figures import HEATMAP_GUIDE

if TYPE_CHECKING:
    from MTLRadiomicsLib.analysis.report import ReportText

CSS = """
@page { size: A4 portrait; margin: 12mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; color: #222; font-size: 10pt;
       max-width: 200mm; margin: 0 auto; padding: 8mm 6mm; background: #fff; }
header { display: flex; justify-content: space-between; align-items: flex-start; gap: 12px; }
h1 { font-size: 18pt; color: #1a3a5a; margin: 0; }
.meta { color: #555; font-size: 9pt; text-align: right; }
.ruo { color: #c0392b; font-weight: bold; }
.banner { border: 2px solid #c0392b; background: #fff4d6; border-radius: 3px; padding: 6px 10px;
          margin: 8px 0 4px; }
.banner p { margin: 2px 0; }
.banner .edited { color: #c0392b; font-weight: bold; }
.banner .warning { color: #7a4a00; }
td.warning { color: #c0392b; font-size: 8.5pt; }
h2 { font-size: 11pt; color: #1a3a5a; border-bottom: 1px solid #1a3a5a; margin: 12px 0 4px;
     padding-bottom: 1px; }
.columns { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 0 24px; }
table { border-collapse: collapse; width: 100%; table-layout: auto; }
td { overflow-wrap: anywhere; }
th, td { text-align: left; vertical-align: top; padding: 1.5px 8px 1.5px 0; }
th { color: #555; font-weight: normal; white-space: nowrap; width: 1%; }
td.value { font-weight: bold; text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap;
           width: 1%; }
td.unit { color: #555; }
table.scores th { white-space: normal; width: auto; }
.small { font-size: 8.5pt; color: #555; }
.middle { display: grid; grid-template-columns: minmax(0, 28fr) minmax(0, 72fr); gap: 0 18px; }
figure { margin: 4px 0; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 8.5pt; color: #555; margin-top: 2px; }
footer { border-top: 1px solid #999; margin-top: 12px; padding-top: 4px; font-size: 8.5pt; }
footer p { margin: 2px 0; }
@media print {
  body { padding: 0; font-size: 8.5pt; max-width: none; }
  h1 { font-size: 15pt; }
  h2 { font-size: 9.5pt; margin: 8px 0 3px; }
  figcaption, .small, footer { font-size: 7.5pt; }
  .gradcam img { max-height: 62mm; width: auto; max-width: 100%; margin: 0 auto; }
  footer { margin-top: 6px; }
  h2 { break-after: avoid; }
  figure, table, .banner { break-inside: avoid; }
}
"""


def _rows(rows: list[tuple[str, str]]) -> str:
    return "\n".join(f"<tr><th>{escape(label)}</th><td>{escape(value)}</td></tr>" for label, value in rows)


def _table(rows: list[tuple[str, str]]) -> str:
    return f"<table>\n{_rows(rows)}\n</table>"


def _banner(text: "ReportText") -> str:
    lines = [f'<p><strong>Intended use:</strong> {escape(text.intended_use)}</p>']
    if text.edited_note:
        lines.append(f'<p class="edited">{escape(text.edited_note)}</p>')
    if text.edited_mask:
        lines.append(f'<p>{escape(text.edited_mask)}</p>')
    lines += [f'<p class="warning">Warning: {escape(w)}</p>' for w in text.warnings]
    return '<section class="banner">\n' + "\n".join(lines) + "\n</section>"


def _metrics(text: "ReportText") -> str:
    rows = "\n".join(f'<tr><th>{escape(name)}</th><td class="value">{escape(value)}</td>'
                     f'<td class="unit">{escape(unit)}</td></tr>' for name, value, unit in text.metrics)
    return f"<table>\n{rows}\n</table>"


def _scores(text: "ReportText") -> str:
    label, value = text.outcome
    rows = [f'<tr><th>{escape(label)}</th><td class="value">{escape(value)}</td><td></td></tr>']
    if text.outcome_meaning:
        rows.append(f'<tr><td colspan="3" class="small">{escape(text.outcome_meaning)}</td></tr>')
    rows += [f'<tr><th>{escape(label)}</th><td class="value">{escape(v)}</td><td></td></tr>'
             for label, v in text.pathology]
    if text.pathology_note:
        rows.append(f'<tr><td colspan="3" class="small">Pathology {escape(text.pathology_note)}</td></tr>')
    if text.withheld:
        rows.append(f'<tr><td colspan="3" class="warning">Withheld: {escape(text.withheld)}</td></tr>')
    if text.domain_note:
        rows.insert(0, f'<tr><td colspan="3" class="warning"><strong>{escape(text.domain_note)}</strong></td></tr>')
    rows.append(f'<tr><td colspan="3" class="small">Uncertainty: {escape(text.uncertainty)}</td></tr>')
    return '<table class="scores">\n' + "\n".join(rows) + "\n</table>"


def _figure(png_base64: str, alt: str, caption: str, css_class: str = "") -> str:
    attribute = f' class="{css_class}"' if css_class else ""
    return (f'<figure{attribute}><img alt="{escape(alt)}" src="data:image/png;base64,{png_base64}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def render_html(text: "ReportText", mip_png: str, slices_png: str, gradcam_png: str,
                window: float = 10.0, field_mm: float = 120.0, has_mtv: bool = True,
                slice_caption: str = "") -> str:
    """The report page; the figures are base64 PNGs (``gradcam_png`` empty when there are no heatmaps);
    ``slice_caption``: the slices' caption (else one from ``window`` and ``field_mm``)."""
    half = (len(text.facts) + 1) // 2
    scales = ", ".join(text.scale_titles.values())
    if gradcam_png:
        gradcam = _figure(gradcam_png, f"Grad-CAM heatmaps: {scales}",
                          f"{text.gradcam_caption}. Scales: {scales}. {text.gradcam_note} {' '.join(HEATMAP_GUIDE)}",
                          "gradcam")
    else:
        gradcam = "<p>No heatmaps were computed.</p>"
    slices_title = "Slices through the lesion's hottest voxel" if has_mtv else \
        "Slices through the lesion centre (the MTV is empty)"
    side = f"{field_mm / 10:.1f}"
    slice_caption = slice_caption or (f"MTV contour red · SUV 0–{window:g}, inverted grey · "
                                      f"field of view {side} × {side} cm")
    footer_line = escape(text.model_line) + (f" · {escape(text.held_out_line)}" if text.held_out_line else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(text.title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{escape(text.title)}</h1>
<div class="meta">{escape(text.subtitle)}<br><span class="ruo">RESEARCH USE ONLY</span></div>
</header>
{_banner(text)}
<h2>Patient and series</h2>
<div class="columns">
{_table(text.facts[:half])}
{_table(text.facts[half:])}
</div>
<div class="middle">
<section>
<h2>Coronal MIP</h2>
{_figure(mip_png, "Coronal maximum-intensity projection",
         f"SUV 0–{window:g}, inverted grey. Red box: analysed MTV. Blue circles: other candidates (rank).")}
</section>
<section>
<h2>{escape(slices_title)}</h2>
{_figure(slices_png, "Axial, coronal and sagittal slices", slice_caption)}
<div class="columns">
<section>
<h2>PET metrics</h2>
{_metrics(text)}
{f'<p class="small">MTV: {escape(text.mtv_label)}</p>' if text.mtv_label else ''}
{f'<p class="small">{escape(text.lesion_note)}</p>' if text.lesion_note else ''}
</section>
<section>
<h2>Scores</h2>
{_scores(text)}
</section>
</div>
<h2>Location</h2>
{_table(text.location)}
{('<h2>MTV by method (the same seed)</h2>' + chr(10) + _table(text.mtv_methods)) if text.mtv_methods else ''}
</section>
</div>
<h2>Grad-CAM heatmaps per network scale</h2>
{gradcam}
<footer>
<p>{footer_line}</p>
<p class="ruo">{escape(text.footer)}</p>
</footer>
</body>
</html>
"""
