"""Mutation testing of the engine's core with mutmut, one module group at a time.

``python -m benchmarks.mutants [GROUP ...] [--list] [--max-children N] [--results FILE]``
(``make mutants`` runs every group; it is slow and not part of CI).

Each group names the source files to mutate and the test files that exercise them. A group runs in
its own working folder ``runs/mutants/<group>/`` holding links to the project and a ``pyproject.toml``
with the group's ``[tool.mutmut]`` settings, so that mutmut's first pass (which runs the group's
tests once to learn which test touches which function) sees only those tests; each mutant is then
checked with the tests that reach its function. The figures per module (killed, survived, not
reached by any test, timeouts) go into the "Mutation testing" section of ``benchmarks/RESULTS.md``
and the surviving mutants, with their diffs, into ``runs/mutants/survivors.md``.

Mutation score = killed / (killed + survived + not covered + suspicious); timeouts count as killed
(the mutant made the code loop or crawl, which the suite notices). Mutants that cannot change
behaviour (equivalent mutants) are not removed by hand: the score is a lower bound.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from benchmarks.report import RESULTS, write_section

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WORK = ROOT / "runs" / "mutants"
LOGIC = "MTLRadiomics/MTLRadiomicsModuleLogic"


@dataclass(frozen=True)
class Group:
    """Source files mutated together and the tests that cover them."""

    name: str
    sources: tuple[str, ...]
    tests: tuple[str, ...]
    purpose: str


GROUPS = (
    Group("suv", ("MTLRadiomicsLib/pet_input/suv.py", "MTLRadiomicsLib/pet_input/dicom_time.py",
                  "MTLRadiomicsLib/pet_input/series_consistency.py"),
          ("Testing/test_suv.py", "Testing/test_suv_provenance.py", "Testing/test_dicom_time.py",
           "Testing/test_series_consistency.py", "Testing/test_pet_input.py", "Testing/test_tracer.py"),
          "SUV conversion, DICOM times, per-slice consistency"),
    Group("series", ("MTLRadiomicsLib/pet_input/dicom_series.py", "MTLRadiomicsLib/pet_input/reading.py"),
          ("Testing/test_series_choice.py", "Testing/test_dicom_series.py", "Testing/test_reading.py",
           "Testing/test_pet_input.py", "Testing/test_suv.py", "Testing/test_tracer.py", "Testing/test_real_pet.py",
           "Testing/test_cli_info.py"),
          "series selection and reading"),
    Group("masks", ("MTLRadiomicsLib/pet_input/masks.py", "MTLRadiomicsLib/pet_input/rtstruct.py",
                    "MTLRadiomicsLib/pet_input/dicom_seg.py", "MTLRadiomicsLib/pet_input/seg_input.py"),
          ("Testing/test_mask_input.py", "Testing/test_mask_files.py", "Testing/test_rtstruct_geometry.py",
           "Testing/test_rtstruct_edges.py", "Testing/test_output_writers.py", "Testing/test_dicom_seg.py"),
          "masks, RTSTRUCT and SEG input"),
    Group("pet_grid", ("MTLRadiomicsLib/analysis/pet_grid.py", "MTLRadiomicsLib/analysis/field.py"),
          ("Testing/test_pet_grid.py", "Testing/test_mtv_network.py", "Testing/test_field.py"),
          "putting results back on the PET grid, and the network's field on the MTV"),
    Group("inference", ("MTLRadiomicsLib/analysis/inference.py",),
          ("Testing/test_inference.py",),
          "inference and Monte-Carlo dropout uncertainty"),
    Group("gradcam", ("MTLRadiomicsLib/analysis/gradcam.py",),
          ("Testing/test_gradcam.py",),
          "Grad-CAM at every scale"),
    Group("metrics", ("MTLRadiomicsLib/mtv/pet_metrics.py", "training/metrics.py"),
          ("Testing/test_pet_metrics.py", "Testing/test_suvpeak_reference.py", "Testing/test_metrics.py"),
          "PET metrics (SUVmax, SUVpeak, MTV, TLG) and AUC / C-index / bootstrap"),
    Group("rescore", ("MTLRadiomicsLib/analysis/engine.py",),
          ("Testing/test_engine_parts.py", "Testing/test_score_stability.py"),
          "the engine's analyze and rescore"),
    Group("batch", ("MTLRadiomicsLib/commands/batch.py", "MTLRadiomicsLib/commands/batch_workers.py",
                    "MTLRadiomicsLib/commands/batch_shards.py"),
          ("Testing/test_batch_parts.py", "Testing/test_regressions_batch.py"),
          "batch, workers, shards and merge"),
    Group("slicer_logic", (f"{LOGIC}/results.py", f"{LOGIC}/parameters.py"),
          ("Testing/test_slicer_results.py",),
          "the Slicer module's result tables and parameters"),
)
BY_NAME = {g.name: g for g in GROUPS}

KILLED = {1, 3}
TIMEOUT = {36, 24, -24, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}
SKIPPED = {34, 37}


def _module_root(source: str) -> str:
    """The folder that makes ``source`` importable under the name the tests use."""
    return "MTLRadiomicsModuleLogic" if source.startswith(LOGIC + "/") else source.split("/", 1)[0]


def _mutated_path(source: str) -> str:
    """``source`` as mutmut sees it inside the group's folder."""
    return source[len("MTLRadiomics/"):] if source.startswith(LOGIC + "/") else source


def _tests_fingerprint(group: Group) -> str:
    """SHA-256 of the group's test files and the shared test helpers."""
    digest = hashlib.sha256()
    for name in sorted(group.tests) + ["Testing/conftest.py"]:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    return digest.hexdigest()


def prepare(group: Group, work: Path, fresh: bool = False, keep: bool = False) -> Path:
    """The working folder for ``group``: links to the project and the group's mutmut settings.

    An existing folder is kept while the group's tests are unchanged (mutmut then checks only mutants
    of changed source files and those not yet checked); changed tests, or ``fresh``, start again.
    ``keep``: kept whatever the tests (for :func:`survivor_names` to be checked again with tests that
    were added since; a test made weaker would leave a kill standing that it no longer earns).
    """
    folder = work / group.name
    tests = _tests_fingerprint(group)
    stamp = folder / "tests.sha256"
    if folder.exists() and (fresh or not keep and (not stamp.exists() or stamp.read_text() != tests)):
        shutil.rmtree(folder)            # new or changed tests: every mutant is checked again
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(tests)
    roots = sorted({_module_root(s) for s in group.sources})

    def link(path: Path, target: Path) -> None:
        if not path.is_symlink():
            path.symlink_to(target)

    for name in ("MTLRadiomicsLib", "training", "benchmarks", "Testing", "Resources"):
        link(folder / name, ROOT / name)
    if "MTLRadiomicsModuleLogic" in roots:
        # The tests import the module's logic as a top-level package from MTLRadiomics/; mutmut
        # mutates it there, so the copy of MTLRadiomics/ it gets must not carry the original.
        slicer = folder / "MTLRadiomics"
        slicer.mkdir(exist_ok=True)
        for item in (ROOT / "MTLRadiomics").iterdir():
            if item.name not in ("MTLRadiomicsModuleLogic", "__pycache__"):
                link(slicer / item.name, item)
        link(folder / "MTLRadiomicsModuleLogic", ROOT / LOGIC)
    else:
        link(folder / "MTLRadiomics", ROOT / "MTLRadiomics")
    if SHARED.exists():
        # the tests find the real data at <project>/../shared; mutmut's project copy is folder/mutants
        link(folder / "shared", SHARED)
    copy = [n for n in ("MTLRadiomicsLib", "training", "benchmarks", "Testing", "Resources", "MTLRadiomics")
            if n not in roots]
    settings = {
        "source_paths": roots,
        "only_mutate": [_mutated_path(s) for s in group.sources],
        "also_copy": copy,
        "pytest_add_cli_args_test_selection": list(group.tests),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q"],
        "use_git_change_detection": False,
        "timeout_multiplier": 5.0,
        "timeout_constant": 10.0,
    }
    lines = ["[tool.pytest.ini_options]", 'testpaths = ["Testing"]', 'markers = ["slow: long-running tests"]',
             "", "[tool.mutmut]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return folder


def survivor_names(folder: Path, group: Group) -> list[str]:
    """The mutants of the group's last run in ``folder`` that no test killed (survived or not reached)."""
    return [name for names in count(folder, group)["survivor_names"].values() for name in names]


def unchecked_names(folder: Path, group: Group) -> list[str]:
    """The group's generated mutants that no run has checked yet, in mutmut's order."""
    names = []
    for source in group.sources:
        meta = folder / "mutants" / (_mutated_path(source) + ".meta")
        if meta.exists():
            names += [k for k, v in json.loads(meta.read_text()).get("exit_code_by_key", {}).items() if v is None]
    return names


def run_group(group: Group, work: Path, max_children: int, log, fresh: bool = False, recheck: bool = False,
              sample: Optional[int] = None, seed: int = 0) -> dict:
    """Run mutmut for ``group``; its counts per module and its survivors. ``recheck``: the survivors of
    the last run again, with the group's tests as they are now (earlier kills stand). ``sample``: at
    most this many of the mutants not checked yet, drawn at random (``seed``), instead of all of them
    (a group too slow to check whole in the time there is; the rest stays "not checked")."""
    folder = prepare(group, work, fresh, keep=recheck or sample is not None)
    mutmut = [sys.executable, "-c", "import sys; from mutmut.__main__ import cli; sys.exit(cli())"]
    # one thread per checked mutant: parallel children must not slow each other into false timeouts
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.time()
    log_file = open(folder / "mutmut.log", "a")

    def mutmut_run(names: list[str]) -> int:
        return subprocess.run(mutmut + ["run", "--max-children", str(max_children)] + names, cwd=folder, env=env,
                              stdout=log_file, stderr=subprocess.STDOUT).returncode

    log(f"[{group.name}] mutmut run ({', '.join(group.sources)}; tests: {', '.join(group.tests)})")
    exit_code = 0
    with log_file:
        if recheck or sample is not None:
            if sample is not None and not unchecked_names(folder, group) and not survivor_names(folder, group):
                # nothing generated yet: generate, learn which test reaches which function, and check
                # each function's first mutant
                exit_code = mutmut_run(["*__mutmut_1"])
            names = survivor_names(folder, group) if recheck else []
            if sample is not None:
                import random

                pool = unchecked_names(folder, group)
                names += sorted(random.Random(seed).sample(pool, min(sample, len(pool))))
            log(f"[{group.name}] {len(names)} mutants: "
                + (f"the last run's survivors again{' and ' if sample is not None else ''}" if recheck else "")
                + (f"a random {min(sample, len(pool))} of {len(pool)} not checked (seed {seed})" if sample is not None
                   else ""))
            if names:
                exit_code = mutmut_run(names) or exit_code
        else:
            exit_code = mutmut_run([])
    seconds = time.time() - start
    counts = count(folder, group)
    survivors = []
    for module, names in counts["survivor_names"].items():
        diffs = mutant_diffs(folder / "mutants" / _mutated_path(module))
        survivors += [(module, name, diffs.get(name.rsplit(".", 1)[-1], "(diff not found)")) for name in names]
    log(f"[{group.name}] {seconds:.0f} s, exit {exit_code}: "
        + "; ".join(f"{m} {c['killed']}/{c['total']} ({c['not_checked']} not checked)"
                    for m, c in counts["modules"].items()))
    return {"group": group.name, "purpose": group.purpose, "seconds": round(seconds), "exit": exit_code,
            "modules": counts["modules"], "survivors": survivors}


def mutant_diffs(mutated_file: Path) -> dict[str, str]:
    """The changed lines of every mutant in mutmut's copy of a source file, by mutant function name
    (``x_name__mutmut_7``), against the function's original (``x_name__mutmut_orig``); quicker than
    ``mutmut show`` once per mutant."""
    if not mutated_file.exists():
        return {}
    text = mutated_file.read_text()
    lines = text.splitlines()        # by line numbers: ast.get_source_segment splits the whole file per call
    functions = {node.name: "\n".join(lines[node.lineno - 1:node.end_lineno])
                 for node in ast.walk(ast.parse(text)) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    diffs = {}
    for name, source in functions.items():
        if "__mutmut_" not in name or name.endswith("__mutmut_orig"):
            continue
        original = functions.get(name.split("__mutmut_")[0] + "__mutmut_orig", "")
        changed = difflib.unified_diff(original.splitlines()[1:], source.splitlines()[1:], lineterm="", n=0)
        diffs[name] = "\n".join(line for line in changed if line[:1] in "+-" and not line.startswith(("+++", "---")))
    return diffs


def count(folder: Path, group: Group) -> dict:
    """Killed / survived / not covered mutants per source file, from mutmut's ``.meta`` files."""
    modules: dict[str, dict] = {}
    names: dict[str, list[str]] = {}
    for source in group.sources:
        meta = folder / "mutants" / (_mutated_path(source) + ".meta")
        tally = {"killed": 0, "timeout": 0, "survived": 0, "no_tests": 0, "suspicious": 0, "skipped": 0,
                 "not_checked": 0}
        names[source] = []
        if meta.exists():
            codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
            for name, code in codes.items():
                if code is None:
                    tally["not_checked"] += 1
                elif code in KILLED:
                    tally["killed"] += 1
                elif code in TIMEOUT:
                    tally["timeout"] += 1
                elif code in SURVIVED:
                    tally["survived"] += 1
                    names[source].append(name)
                elif code in NO_TESTS:
                    tally["no_tests"] += 1
                    names[source].append(name)
                elif code in SKIPPED:
                    tally["skipped"] += 1
                else:
                    tally["suspicious"] += 1
        caught = tally["killed"] + tally["timeout"]
        total = caught + tally["survived"] + tally["no_tests"] + tally["suspicious"]
        tally["total"] = total
        tally["killed"] = caught
        tally["score"] = round(caught / total, 3) if total else None
        modules[source] = tally
    return {"modules": modules, "survivor_names": names}


def table(results: list[dict]) -> str:
    rows = ["| module | what | mutants checked | killed (of them by timeout) | survived | no test reaches it | score |"
            " not checked |",
            "|---|---|---|---|---|---|---|---|"]
    killed = total = 0
    for result in results:
        for module, c in result["modules"].items():
            score = "-" if c["score"] is None else f"{100 * c['score']:.1f} %"
            rows.append(f"| `{module}` | {result['purpose']} | {c['total']} | {c['killed']} ({c['timeout']}) | "
                        f"{c['survived']} | "
                        f"{c['no_tests']} | {score} | {c.get('not_checked', 0)} |")
            killed += c["killed"]
            total += c["total"]
    if total:
        rows.append(f"| **all** | | {total} | {killed} | | | **{100 * killed / total:.1f} %** | |")
    return "\n".join(rows)


def write_survivors(results: list[dict], path: Path) -> None:
    parts = ["# Surviving mutants\n"]
    for result in results:
        for module, name, diff in result["survivors"]:
            parts.append(f"## {name} ({module})\n\n```diff\n{diff}\n```\n")
    path.write_text("\n".join(parts))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mutants", description=__doc__.split("\n")[0])
    parser.add_argument("groups", nargs="*", metavar="GROUP", help="groups to run (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="list the groups, their sources and tests, and stop")
    parser.add_argument("--max-children", type=int, default=max(1, (os.cpu_count() or 2)),
                        help="mutants checked in parallel (default: the number of CPUs)")
    parser.add_argument("--work", type=Path, default=WORK, help="working folder (default: runs/mutants)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the RESULTS.md to write")
    parser.add_argument("--fresh", action="store_true",
                        help="forget earlier results of the chosen groups (default: resume them)")
    parser.add_argument("--recheck", action="store_true",
                        help="check only the survivors of each chosen group's last run again, with the tests as "
                             "they are now (after tests were added; earlier kills stand)")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="check at most N of each chosen group's mutants not checked yet, drawn at random "
                             "(the rest stays 'not checked' in the table)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of --sample (default 0)")
    args = parser.parse_args(argv)
    if args.sample is not None and args.sample < 0:
        parser.error("--sample must be 0 or more")
    if args.fresh and args.recheck:
        parser.error("--fresh and --recheck exclude each other")
    if args.list:
        for g in GROUPS:
            print(f"{g.name}: {g.purpose}\n  mutates: {' '.join(g.sources)}\n  tests:   {' '.join(g.tests)}")
        return 0
    unknown = [name for name in args.groups if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    try:
        import mutmut  # noqa: F401
    except ImportError:
        parser.error("mutmut is not installed: pip install mutmut (make mutants installs it)")
    chosen = [BY_NAME[name] for name in args.groups] if args.groups else list(GROUPS)
    args.work.mkdir(parents=True, exist_ok=True)
    saved = args.work / "results.json"
    previous = {r["group"]: r for r in json.loads(saved.read_text())} if saved.exists() else {}
    for group in chosen:
        previous[group.name] = run_group(group, args.work, args.max_children,
                                           log=lambda s: print(s, flush=True), fresh=args.fresh,
                                           recheck=args.recheck, sample=args.sample, seed=args.seed)
        saved.write_text(json.dumps(list(previous.values()), indent=1))
    results = [previous[g.name] for g in GROUPS if g.name in previous]
    missing = [f"{g.name} ({g.purpose})" for g in GROUPS if g.name not in previous]
    write_survivors(results, args.work / "survivors.md")
    body = (f"{table(results)}\n\nEach group's figures are from its latest run (they accumulate in "
            "`runs/mutants/results.json`; the command above ran the groups it names). "
            "Score: killed / (killed + survived + not reached by any test), of the mutants checked; a group "
            "checked in part (`--sample`: a random draw of its mutants) lists the rest as not checked; timeouts count "
            "as killed; equivalent mutants are not removed, so each score is a lower bound. Seconds per group: "
            + ", ".join(f"{r['group']} {r['seconds']}" for r in results)
            + ". Survivors with their diffs: `runs/mutants/survivors.md`."
            + ("" if not missing else " Groups not run yet: " + ", ".join(missing) + "."))
    command = " ".join(str(a) for a in (sys.argv[1:] if argv is None else argv))
    write_section("Mutation testing", body, f"python -m benchmarks.mutants {command}".strip(), args.results)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
