"""The `mtl-radiomics` command line: the engine's one entry for front ends.

Errors a user can fix print one line on stderr and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional, Sequence

from MTLRadiomicsLib import __version__
from MTLRadiomicsLib.errors import MTLRadiomicsError

PROG = "mtl-radiomics"
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    from MTLRadiomicsLib.commands import analyze, batch, demo, info, models, report, rescore, serve, synth

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="MTLRadiomics: PET tumour segmentation, Grad-CAM and outcome prediction with one "
                    "multi-task multi-scale 3D network.",
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of unexpected errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for module in (analyze, rescore, report, batch, serve, info, models, synth, demo):
        module.register(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return int(handler(args) or 0)
    except MTLRadiomicsError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # last resort: one line for the user, traceback with --debug
        if args.debug or os.environ.get("MTL_RADIOMICS_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(error).__name__}: {error} "
              f"(run with --debug for the traceback and report it)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
