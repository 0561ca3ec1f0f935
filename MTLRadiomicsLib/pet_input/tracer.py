"""Is the scan F-18 FDG PET? The models know nothing else, so anything else is refused for analysis.

A scan is refused when its header positively names something else:
  - another radionuclide in RadionuclideCodeSequence (0054,0300) (code or meaning) or in the
    Radiopharmaceutical (0018,0031) text;
  - a RadionuclideHalfLife (0018,1075) more than 2 % away from F-18's 6586.2 s;
  - a tracer other than FDG in RadiopharmaceuticalCodeSequence (0054,0304) or the Radiopharmaceutical
    text (PSMA, DOTATATE, FLT, choline, ...);
  - a gamma camera (SPECT) acquisition stored as PT: NM Image Storage, "SPECT" in the image type,
    series description, protocol or reconstruction, a gamma camera model name, NM detector
    attributes, or energy windows that exclude the 511 keV annihilation photons;
  - an injected activity above 2000 MBq (therapy, never a diagnostic FDG scan).
Tags that are absent count for nothing: many exports carry none of them (NIfTI files never do), and
such scans are read as FDG. Unrecognised text (a site's own tracer name) is shown but not refused.
The check is kept on the PetVolume: `info` shows it, `analyze` refuses with its one-line reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.suv import F18_HALF_LIFE_S

HALF_LIFE_TOLERANCE = 0.02            # relative; vendors write 6586, 6586.2 or 6588 s
MAX_FDG_ACTIVITY_MBQ = 2000.0
NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
ANNIHILATION_KEV = 511.0


@dataclass(frozen=True)
class Nuclide:
    """A radionuclide: name as 'Ga-68', half-life, whether PET images it, SNOMED CT and SRT codes."""

    name: str
    half_life_s: float
    positron: bool
    codes: tuple[str, ...] = ()


NUCLIDES: tuple[Nuclide, ...] = (
    Nuclide("F-18", 6586.2, True, ("77004003", "C-111A1")),
    Nuclide("C-11", 1221.8, True, ("40565003", "C-105A1")),
    Nuclide("N-13", 597.9, True, ("21576001", "C-107A1")),
    Nuclide("O-15", 122.2, True, ("129504001", "C-B1038")),
    Nuclide("Ga-68", 4062.6, True, ("35337001", "C-131A3")),
    Nuclide("Rb-82", 76.4, True, ("79197006", "C-159A2")),
    Nuclide("Cu-64", 45720.0, True, ("3932008", "C-127A2")),
    Nuclide("Cu-62", 580.4, True, ("422934004", "C-127A5")),
    Nuclide("Zr-89", 282276.0, True, ("63360001", "C-168A4")),
    Nuclide("I-124", 360806.0, True, ("40937006", "C-114A5")),
    Nuclide("Y-86", 53064.0, True, ("10738001", "C-162A3")),
    Nuclide("Br-76", 58320.0, True, ("79523006", "C-113A2")),
    Nuclide("Sc-44", 14551.0, True),
    Nuclide("Tc-99m", 21624.0, False, ("72454006", "C-163A8")),
    Nuclide("In-111", 242326.0, False, ("56609000", "C-145A4")),
    Nuclide("I-123", 47604.0, False, ("21572004", "C-114A4")),
    Nuclide("I-131", 693377.0, False, ("1368003", "C-114B1")),
    Nuclide("Ga-67", 281810.0, False, ("2008008", "C-131A2")),
    Nuclide("Tl-201", 262826.0, False, ("60057003", "C-138A9")),
    Nuclide("Lu-177", 574300.0, False, ("447553000", "C-101ED")),
    Nuclide("Y-90", 230580.0, False, ("14691008", "C-162A7")),
    Nuclide("Sm-153", 166622.0, False, ("419804008", "C-B1134")),
    Nuclide("Ho-166", 96480.0, False),
    Nuclide("Ra-223", 987552.0, False, ("24853006", "C-136A2")),
)
_BY_CODE = {code: n for n in NUCLIDES for code in n.codes}
_ELEMENT_NAMES = {"F": "fluorine", "C": "carbon", "N": "nitrogen", "O": "oxygen", "Ga": "gallium",
                  "Rb": "rubidium", "Cu": "copper", "Zr": "zirconium", "I": "iodine", "Y": "yttrium",
                  "Br": "bromine", "Sc": "scandium", "Tc": "technetium", "In": "indium",
                  "Tl": "thallium", "Lu": "lutetium", "Sm": "samarium", "Ho": "holmium", "Ra": "radium"}
FDG_CODES = ("35321007", "C-B1031")   # Fluorodeoxyglucose F^18^ (SNOMED CT, SRT)
_FDG_TEXT = re.compile(r"fdg|deoxy.{0,16}glucose", re.I)
# Tracers the models do not know, by the words their names carry (label, pattern).
OTHER_TRACERS: tuple[tuple[str, str], ...] = (
    ("PSMA", r"psma|dcfpyl|pylarify|piflufolastat|gozetotide|flotufolastat|vipivotide"),
    ("DOTA peptide", r"dota|edotreotide|oxodotreotide|lutathera|netspot|detectnet"),
    ("FAPI", r"fapi"), ("choline", r"cholin"), ("FLT", r"\bflt\b|thymidine"),
    ("FET", r"\bfet\b|fluoroethyl"), ("FES", r"\bfes\b|estradiol"), ("NaF", r"\bnaf\b|fluoride"),
    ("FDOPA", r"dopa"), ("fluciclovine", r"fluciclovine|facbc|axumin"),
    ("amyloid", r"florbeta|flutemetamol|amyvid|neuraceq|vizamyl|\bpib\b"),
    ("tau", r"flortaucipir|tauvid"), ("FMISO", r"fmiso|misonidazole|\bfaza\b"),
    ("methionine", r"methionin"), ("acetate", r"acetat"), ("ammonia", r"ammonia"),
    ("water", r"\bwater\b"), ("flurpiridaz", r"flurpiridaz"), ("pentixafor", r"pentixafor"),
    ("MIBG", r"mibg|iobenguane"), ("SPECT tracer", r"sestamibi|tetrofosmin|\bmdp\b|medronate"),
)
_SPECT_TEXT = re.compile(r"(?<![a-z])x?spect", re.I)
_GAMMA_CAMERAS = re.compile(
    r"(?<![a-z])(nm|encore\d*|symbia|intevo|infinia|brightview|starguide|veriton|d-spect|"
    r"millennium|ventri|precedence|skylight)(?![a-z])", re.I)
_NM_ATTRIBUTES = ("DetectorInformationSequence", "RotationInformationSequence")   # NM modules only


def _nuclide_pattern(nuclide: Nuclide) -> re.Pattern:
    symbol, mass = nuclide.name.split("-")
    number, meta = re.fullmatch(r"(\d+)(m?)", mass).groups()
    name = _ELEMENT_NAMES[symbol]
    mass_text = f"{number}{meta}" if meta else f"{number}(?![0-9m])"
    return re.compile(
        rf"(?<![0-9a-z]){number}{meta}-?{symbol}|(?<![a-z]){symbol}-?{mass_text}(?![0-9])"
        rf"|{number}{meta}[\s-]*{name}|{name}[\s-]*{mass_text}", re.I)


_NUCLIDE_PATTERNS = [(n, _nuclide_pattern(n)) for n in NUCLIDES]


def nuclide_in_text(text: str) -> Optional[Nuclide]:
    """The radionuclide a text names ('^18^Fluorine', '18F-FDG', 'Ga68-PSMA', 'Lu-177'), if any."""
    plain = text.replace("^", "")
    for nuclide, pattern in _NUCLIDE_PATTERNS:
        if pattern.search(plain):
            return nuclide
    return None


def tracer_in_text(text: str) -> Optional[str]:
    """'FDG' when the text names FDG, the label of another tracer it names, else None."""
    for label, pattern in OTHER_TRACERS:
        if re.search(pattern, text, re.I):
            return label
    return "FDG" if _FDG_TEXT.search(text) else None


def nuclides_by_half_life(half_life_s: float, tolerance: float = HALF_LIFE_TOLERANCE) -> list[Nuclide]:
    """The radionuclides whose half-life lies within ``tolerance`` of ``half_life_s``."""
    return [n for n in NUCLIDES if abs(half_life_s - n.half_life_s) <= tolerance * n.half_life_s]


def human_duration(seconds: float) -> str:
    """'67.7 min', '12.7 h', '6.65 days'."""
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


@dataclass
class TracerCheck:
    """What the header says about radionuclide, tracer and acquisition, and whether analysis is refused.

    radionuclide: 'F-18', 'Ga-68', ... as named by the codes or text (None when not named).
    radiopharmaceutical: the Radiopharmaceutical (0018,0031) text or the coded meaning.
    tracer: 'FDG', another tracer's label, or None when no known tracer is named.
    half_life_s: the half-life the check used (the header's, or --half-life).
    findings: what speaks against F-18 FDG PET, each naming the fact.
    refusal: the one-line reason analysis is refused, or None.
    stated: whether the input states any tracer fact at all.
    """

    radionuclide: Optional[str] = None
    radiopharmaceutical: Optional[str] = None
    tracer: Optional[str] = None
    half_life_s: Optional[float] = None
    findings: list[str] = field(default_factory=list)
    refusal: Optional[str] = None
    stated: bool = False

    @property
    def accepted(self) -> bool:
        return self.refusal is None

    def require_fdg(self) -> None:
        """Raise PetInputError with the refusal when the scan is not F-18 FDG PET."""
        if self.refusal is not None:
            raise PetInputError(self.refusal)

    def describe(self) -> str:
        """One line for people: what the tracer facts say."""
        if not self.stated:
            return "not stated in the input: read as F-18 FDG"
        parts = [self.radiopharmaceutical or "radiopharmaceutical not named",
                 self.radionuclide or "radionuclide not named"]
        if self.half_life_s is not None:
            parts.append(f"half-life {self.half_life_s:g} s")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "stated": self.stated, "radionuclide": self.radionuclide,
                "radiopharmaceutical": self.radiopharmaceutical, "tracer": self.tracer,
                "half_life_s": self.half_life_s, "findings": list(self.findings),
                "refusal": self.refusal, "description": self.describe()}


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, None) if ds is not None else None
    return "" if value is None else str(value).strip()


def _joined(ds: Any, keyword: str) -> str:
    """A possibly multi-valued attribute as one text ('DERIVED\\SECONDARY')."""
    value = ds.get(keyword, None)
    if value is None or isinstance(value, str):
        return _text(ds, keyword)
    try:
        return "\\".join(str(v).strip() for v in value)
    except TypeError:
        return str(value).strip()


def _codes(item: Any, keyword: str) -> list[tuple[str, str]]:
    """(code value, code meaning) of every item of a code sequence."""
    sequence = item.get(keyword, None) if item is not None else None
    return [(_text(c, "CodeValue"), _text(c, "CodeMeaning")) for c in (sequence or [])]


def _number(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def check_tracer(ds: Any, overrides: Any = None) -> TracerCheck:
    """Judge one PET header (a pydicom Dataset, or None for files without tags).

    Args:
        ds: a representative header of the series.
        overrides: SuvOverrides; a stated --half-life or --dose replaces the header's.
    """
    check = TracerCheck()
    sequence = ds.get("RadiopharmaceuticalInformationSequence", None) if ds is not None else None
    rp = sequence[0] if sequence else None
    _judge_nuclide_and_tracer(check, rp)
    _judge_half_life(check, rp, getattr(overrides, "half_life_s", None))
    acquisition = _acquisition_findings(ds)
    activity = _activity_finding(rp, getattr(overrides, "dose_mbq", None))
    check.findings += acquisition + activity
    if check.findings:
        check.refusal = _refusal(check, pet_acquisition=not acquisition and not activity)
    return check


def _judge_nuclide_and_tracer(check: TracerCheck, rp: Any) -> None:
    name = _text(rp, "Radiopharmaceutical")
    nuclide_codes = _codes(rp, "RadionuclideCodeSequence")
    drug_codes = _codes(rp, "RadiopharmaceuticalCodeSequence")
    check.radiopharmaceutical = name or next((m for _, m in drug_codes if m), None)
    check.stated = bool(name or nuclide_codes or drug_codes)

    nuclide, where = None, ""
    for value, meaning in nuclide_codes:
        nuclide = _BY_CODE.get(value) or nuclide_in_text(meaning)
        if nuclide is not None:
            where = "RadionuclideCodeSequence"
            break
    if nuclide is None:
        for text in [name] + [m for _, m in drug_codes]:
            nuclide = nuclide_in_text(text) if text else None
            if nuclide is not None:
                where = "Radiopharmaceutical"
                break
    if nuclide is not None:
        check.radionuclide = nuclide.name
        if nuclide.name != "F-18":
            check.findings.append(f"radionuclide {nuclide.name} ({where})")

    tracers = [tracer_in_text(text) for text in [name] + [m for _, m in drug_codes] if text]
    if any(value in FDG_CODES for value, _ in drug_codes):
        tracers.append("FDG")
    others = [t for t in tracers if t not in (None, "FDG")]
    check.tracer = others[0] if others else ("FDG" if "FDG" in tracers else None)
    if others:
        check.findings.append(f"radiopharmaceutical '{check.radiopharmaceutical}'")


def _judge_half_life(check: TracerCheck, rp: Any, stated: Optional[float]) -> None:
    half_life = _number(stated) if stated is not None else _number(_text(rp, "RadionuclideHalfLife"))
    if half_life is None:
        return
    check.half_life_s = half_life
    check.stated = True
    if abs(half_life - F18_HALF_LIFE_S) <= HALF_LIFE_TOLERANCE * F18_HALF_LIFE_S:
        return
    matching = nuclides_by_half_life(half_life)
    guesses = " or ".join(n.name for n in matching)
    if check.radionuclide in guesses.split(" or "):
        guesses = ""                    # agrees with the radionuclide the header names
    detail = human_duration(half_life) + (f"; {guesses}?" if guesses else "")
    origin = " from --half-life" if stated is not None else ""
    check.findings.append(f"radionuclide half-life {half_life:g} s ({detail}){origin}")
    if check.radionuclide is None and guesses:
        check.radionuclide = f"{guesses}?"


def _acquisition_findings(ds: Any) -> list[str]:
    """Signs of a gamma camera (SPECT) acquisition in a series stored as PT."""
    if ds is None or not hasattr(ds, "get"):
        return []
    found = []
    if _text(ds, "SOPClassUID") == NM_IMAGE_STORAGE:
        found.append("SOP class NM Image Storage")
    model = _text(ds, "ManufacturerModelName")
    if model and (_GAMMA_CAMERAS.search(model) or _SPECT_TEXT.search(model)):
        found.append(f"manufacturer model {model}")
    for keyword, label in (("ImageType", "image type"), ("SeriesDescription", "series description"),
                           ("ProtocolName", "protocol"), ("ReconstructionMethod", "reconstruction")):
        text = _joined(ds, keyword)
        if text and _SPECT_TEXT.search(text):
            found.append(f"{label} {text}")
    present = [k for k in _NM_ATTRIBUTES if ds.get(k, None) not in (None, "")]
    if present:
        found.append(f"gamma camera attributes {', '.join(present)}")
    windows = []
    for window in ds.get("EnergyWindowRangeSequence", None) or []:
        low = _number(window.get("EnergyWindowLowerLimit", None))
        high = _number(window.get("EnergyWindowUpperLimit", None))
        if low is not None and high is not None:
            windows.append((low, high))
    if windows and not any(low <= ANNIHILATION_KEV <= high for low, high in windows):
        shown = ", ".join(f"{low:g}-{high:g} keV" for low, high in windows)
        found.append(f"energy window {shown} (no 511 keV annihilation photons)")
    return found


def _activity_finding(rp: Any, stated_mbq: Optional[float]) -> list[str]:
    if stated_mbq is not None:
        activity = float(stated_mbq)
    else:
        dose_bq = _number(_text(rp, "RadionuclideTotalDose"))
        if dose_bq is None:
            return []
        activity = dose_bq / 1e6
    if activity <= MAX_FDG_ACTIVITY_MBQ:
        return []
    return [f"injected activity {activity:.0f} MBq"]


def _refusal(check: TracerCheck, pet_acquisition: bool) -> str:
    """One line: 'Ga-68 PSMA PET: the models know F-18 FDG only (...)' for real PET with another
    radionuclide or tracer, else 'not F-18 FDG PET: ...'."""
    named = next((n for n in NUCLIDES if n.name == check.radionuclide), None)
    if pet_acquisition and named is not None and named.positron:
        what = " ".join(filter(None, [named.name, check.tracer if check.tracer != "FDG" else None]))
        return f"{what} PET: the models know F-18 FDG only ({', '.join(check.findings)})"
    return f"not F-18 FDG PET: {', '.join(check.findings)}; the models know F-18 FDG PET only"
