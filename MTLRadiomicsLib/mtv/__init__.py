"""The metabolic tumour volume: the network's MTV by sliding windows over a region that grows until
the lesion is enclosed, the classical threshold methods, plausibility checks, and PET metrics."""
