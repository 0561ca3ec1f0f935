"""Options shared by commands that read a PET volume: SUV overrides, units, series choice."""

from __future__ import annotations

import argparse

from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.reading import load_pet
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.pet_input.dicom_time import parse_user_time
from MTLRadiomicsLib.pet_input.suv import SuvOverrides


def add_pet_options(parser: argparse.ArgumentParser) -> None:
    """Add PET, --series, --input-units and the SUV override options."""
    parser.add_argument("pet", metavar="PET",
                        help="PET volume: NIfTI (.nii/.nii.gz), NRRD, MHA file, or a DICOM folder")
    add_suv_options(parser)


def add_suv_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Add --series, --input-units and the SUV override options; return them (``batch`` reads the
    same options from manifest columns named like their destinations: weight, input_units, ...)."""
    group = parser.add_argument_group("SUV (body weight)", "override or supply DICOM facts by hand")
    group.add_argument("--series", metavar="UID", help="SeriesInstanceUID to read when a DICOM "
                       "folder holds several PET series (default: the attenuation-corrected one)")
    group.add_argument("--input-units", choices=("suv", "bqml"),
                       help="units of a NIfTI/NRRD/MHA file (default: suv)")
    group.add_argument("--weight", type=float, metavar="KG", help="patient weight in kg")
    group.add_argument("--dose", type=float, metavar="MBQ", help="injected activity in MBq")
    group.add_argument("--injection-time", metavar="TIME",
                       help="injection time, HH:MM[:SS] on the scan day or YYYY-MM-DDTHH:MM:SS")
    group.add_argument("--scan-time", metavar="TIME",
                       help="scan (series) start, same forms")
    group.add_argument("--half-life", type=float, metavar="S",
                       help="radionuclide half-life in seconds (F-18: 6586)")
    group.add_argument("--decay-corrected-to", choices=("scan", "injection"),
                       help="for --input-units bqml (required there): the time the values are decay corrected "
                            "to; scan: the scan start, as scanners usually export (the dose is decayed from "
                            "--injection-time to --scan-time); injection: the injection time (no decay)")
    return list(group._group_actions)          # the actions just added to the group


def overrides_from_args(args: argparse.Namespace) -> SuvOverrides:
    """Build SUV overrides from parsed options; bad values raise PetInputError."""
    def positive(name: str, value):
        if value is not None and not value > 0:
            raise PetInputError(f"--{name} must be positive, not {value:g}")
        return value

    def when(name: str, value):
        if value is None:
            return None
        try:
            return parse_user_time(value)
        except ValueError as error:
            raise PetInputError(f"--{name}: {error}") from None

    def get(name: str):
        return getattr(args, name, None)

    return SuvOverrides(weight_kg=positive("weight", get("weight")),
                        dose_mbq=positive("dose", get("dose")),
                        injection_time=when("injection-time", get("injection_time")),
                        half_life_s=positive("half-life", get("half_life")),
                        scan_time=when("scan-time", get("scan_time")),
                        decay_corrected_to=get("decay_corrected_to"))


def load_pet_from_args(args: argparse.Namespace) -> PetVolume:
    """Read the PET named on the command line with the SUV options applied."""
    return load_pet(args.pet, overrides=overrides_from_args(args), input_units=args.input_units,
                    series_uid=args.series)
