"""Training, evaluation, ablation and export of MTLRadiomics models.

Run as modules from the repository root, e.g.
``python -m training.train --config training/configs/small.yaml --manifest cohort/manifest.csv``.
"""
