"""The names of the MTV methods, without the code that runs them (the command line lists them)."""

from __future__ import annotations

NETWORK = "network"
CLASSICAL_METHODS: dict[str, str] = {
    "suvmax40": "40 % of SUVmax",
    "suvmax41": "41 % of SUVmax (EANM)",
    "suvmax50": "50 % of SUVmax",
    "suv2.5": "SUV >= 2.5",
    "percist": "PERCIST: 1.5 x liver mean + 2 x liver SD",
}
MTV_METHODS: dict[str, str] = {NETWORK: "network (sliding windows)", **CLASSICAL_METHODS}
