"""`batch --shard K/N` and `mtl-radiomics batch-merge DIR...`: one manifest split over a cluster's
array jobs (SLURM or the like), and their summaries joined again.

Row i of the manifest (0-based) belongs to shard i % N + 1 (round robin, so that a manifest sorted by
site or size spreads evenly). Each shard writes its case folders into the shared --out and its own
summary, ``summary_shard_K_of_N.csv``, with ``summary_shard_K_of_N.json`` beside it once the shard has
finished: the manifest's SHA-256, the options' SHA-256, the manifest's case_ids in order, and the
shard's. `batch-merge` checks that every shard 1..N has finished, from the same manifest with the same
options, and writes summary.csv in manifest order.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from MTLRadiomicsLib.commands.batch_summary import SUMMARY, read_summary, write_summary
from MTLRadiomicsLib.errors import MTLRadiomicsError

SHARD_FILE = re.compile(r"summary_shard_(\d+)_of_(\d+)\.json\Z")
EXIT_ALL_DONE, EXIT_SOME_FAILED = 0, 1
SHOWN = 5                                 # case_ids named in one line before "... and N more"


@dataclass(frozen=True)
class Shard:
    """Shard ``k`` of ``n`` (1 <= k <= n)."""

    k: int
    n: int

    @property
    def summary_name(self) -> str:
        return f"summary_shard_{self.k}_of_{self.n}.csv"

    @property
    def record_name(self) -> str:
        return f"summary_shard_{self.k}_of_{self.n}.json"

    def positions(self, n_cases: int) -> list[int]:
        """The manifest rows (0-based) of this shard."""
        return list(range(self.k - 1, n_cases, self.n))


def parse_shard(text: Optional[str]) -> Optional[Shard]:
    """``"K/N"`` as a Shard; None for None; a one-line error otherwise."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise MTLRadiomicsError(f"--shard {text!r}: give K/N with 1 <= K <= N, e.g. --shard 1/4 "
                                "(with SLURM: --shard $SLURM_ARRAY_TASK_ID/4 and --array=1-4)")
    return Shard(int(match.group(1)), int(match.group(2)))


def manifest_sha256(manifest: Path) -> str:
    return hashlib.sha256(manifest.read_bytes()).hexdigest()


def forget_finished(out: Path, shard: Shard) -> None:
    """Remove the shard's record of having finished: until this run finishes, merge sees it missing."""
    (out / shard.record_name).unlink(missing_ok=True)


def write_shard(out: Path, shard: Shard, manifest: Path, options_sha256: str, case_ids: Sequence[str],
                rows: list[dict]) -> Path:
    """Write the shard's summary, then the record that it finished."""
    summary = write_summary(out / shard.summary_name, rows)
    record = {"shard": shard.k, "of": shard.n, "manifest": str(manifest.absolute()),
              "manifest_sha256": manifest_sha256(manifest), "options_sha256": options_sha256,
              "finished": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
              "summary": shard.summary_name, "case_ids": list(case_ids),
              "shard_case_ids": [case_ids[i] for i in shard.positions(len(case_ids))]}
    tmp = out / f"{shard.record_name}.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(out / shard.record_name)
    return summary


# ---------------------------------------------------------------- batch-merge


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "batch-merge", help="join the summaries of 'batch --shard K/N' runs into one summary.csv",
        description="Join the summaries that 'batch --shard K/N' wrote (summary_shard_K_of_N.csv) into "
                    "summary.csv in manifest order. Refused, in one line, when a shard is missing or has "
                    "not finished, or when the shards come from different manifests or options.",
        epilog="Exit status: 0 every case done; 1 some cases failed (summary.csv says why); 2 not merged.")
    parser.add_argument("folders", nargs="+", metavar="DIR",
                        help="the --out folder(s) of the shards (several when the shards wrote to different disks)")
    parser.add_argument("--out", metavar="DIR", help="where summary.csv goes (default: the first DIR)")
    parser.set_defaults(handler=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    folders = [Path(f) for f in args.folders]
    rows, failed = merge(folders)
    out = Path(args.out) if args.out else folders[0]
    out.mkdir(parents=True, exist_ok=True)
    summary = write_summary(out / SUMMARY, rows)
    print(f"{len(rows) - len(failed)} of {len(rows)} cases analysed; summary: {summary}")
    for row in failed:
        print(f"failed: {row['case_id']}: {row.get('error', '')}")
    return EXIT_ALL_DONE if not failed else EXIT_SOME_FAILED


def merge(folders: Sequence[Path]) -> tuple[list[dict], list[dict]]:
    """The summary rows of every shard in manifest order, and those that failed; a one-line
    error when the shards are incomplete or disagree."""
    records = _records(folders)
    first = records[0][1]
    n = first["of"]
    for what, key in (("manifests", "manifest_sha256"), ("analysis options", "options_sha256"),
                      ("numbers of shards", "of")):
        values = {record[key] for _, record in records}
        if len(values) > 1:
            groups = "; ".join(f"shard {r['shard']}/{r['of']} ({str(r[key])[:12]})" for _, r in records)
            raise MTLRadiomicsError(f"the shards come from different {what} and cannot be merged: {groups}")
    found = {record["shard"]: (folder, record) for folder, record in records}
    if len(found) < len(records):
        twice = sorted({r["shard"] for _, r in records if sum(s["shard"] == r["shard"] for _, s in records) > 1})
        raise MTLRadiomicsError(f"shard(s) {', '.join(map(str, twice))} of {n} found more than once in "
                                f"{', '.join(map(str, folders))}")
    case_ids = first["case_ids"]
    missing = [k for k in range(1, n + 1) if k not in found]
    if missing:
        cases = [case_ids[i] for k in missing for i in Shard(k, n).positions(len(case_ids))]
        raise MTLRadiomicsError(
            f"shard(s) {', '.join(map(str, missing))} of {n} missing or unfinished in {', '.join(map(str, folders))} "
            f"({len(cases)} cases not analysed: {_some(cases)}); run batch --shard K/{n} for each with the "
            "same manifest and options, then merge again")
    by_id: dict[str, dict] = {}
    for k, (folder, record) in sorted(found.items()):
        rows = {row["case_id"]: row for row in read_summary(folder / record["summary"])}
        absent = [c for c in record["shard_case_ids"] if c not in rows]
        if absent:
            raise MTLRadiomicsError(f"{folder / record['summary']} lacks {len(absent)} of its shard's cases "
                                    f"({_some(absent)}); run batch --shard {k}/{n} again")
        by_id |= {c: rows[c] for c in record["shard_case_ids"]}
    merged = [by_id[c] for c in case_ids]
    return merged, [row for row in merged if row["status"] == "failed"]


def _records(folders: Sequence[Path]) -> list[tuple[Path, dict]]:
    records = []
    for folder in folders:
        if not folder.is_dir():
            raise MTLRadiomicsError(f"{folder} is not a folder")
        for path in sorted(folder.iterdir()):
            if SHARD_FILE.match(path.name):
                try:
                    records.append((folder, json.loads(path.read_text())))
                except (OSError, ValueError) as error:
                    raise MTLRadiomicsError(f"{path} cannot be read ({error}); run that shard again") from None
    if not records:
        raise MTLRadiomicsError(f"no finished shard in {', '.join(map(str, folders))} (no "
                                "summary_shard_K_of_N.json; run batch --shard K/N first)")
    return records


def _some(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
