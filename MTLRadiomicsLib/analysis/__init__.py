"""From a PET scan to a result a physician can read, check and keep."""
