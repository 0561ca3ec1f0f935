"""Synthetic FDG-PET: a whole-body phantom with lung or oesophageal tumours (ground truth: the 40 %
SUVmax MTV) or with soft-tissue sarcomas and head-and-neck cancers (ground truth: the whole tumour,
as a clinician's GTV), outcomes from a hidden risk, deterministic from a seed; cohorts on disk and
DICOM export.

The phantom is analytic (shapes in mm), so the whole body at clinical sampling and the 2 mm crop
around the lesion show the same patient.
"""

from MTLRadiomicsLib.synth.anatomy import ORGAN_LABELS
from MTLRadiomicsLib.synth.cases import (SyntheticCase, lesion_crop_case, organ_labels,
                                         wholebody_case)
from MTLRadiomicsLib.synth.cohort import MANIFEST_COLUMNS, case_seed, generate_cohort
from MTLRadiomicsLib.synth.dicom_writer import write_pet_dicom
from MTLRadiomicsLib.synth.outcomes import concordance_index, roc_auc
from MTLRadiomicsLib.synth.patient import (ALL_PATHOLOGIES, GENERATOR_VERSION, Patient,
                                           sample_patient)

__all__ = [
    "SyntheticCase", "wholebody_case", "lesion_crop_case", "generate_cohort", "write_pet_dicom",
    "organ_labels", "sample_patient", "Patient", "case_seed", "roc_auc", "concordance_index",
    "ORGAN_LABELS", "MANIFEST_COLUMNS", "GENERATOR_VERSION", "ALL_PATHOLOGIES",
]
