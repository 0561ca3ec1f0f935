"""Cohorts with `batch`: worker processes (`--workers`, `--memory-gb`), shards for a cluster's array
jobs (`--shard K/N`) joined by `batch-merge`, Ctrl-C, and resuming. A small random model and small
synthetic lesion crops keep this fast."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import SimpleITK as sitk
from cli_runner import PROJECT_ROOT, run_cli

from MTLRadiomicsLib.cli import main
from MTLRadiomicsLib.commands.batch_shards import Shard, parse_shard
from MTLRadiomicsLib.commands.batch_workers import (CaseOutcome, CaseTask, WorkerPlan, case_memory_gb,
                                                    keep_model_loaded, pet_voxels, plan_workers, run_in_workers)
from MTLRadiomicsLib.errors import MTLRadiomicsError

# Columns that differ between runs of the same analysis: wall time, and the folder when --out differs.
VARYING = {"seconds", "folder", "status"}
HEADER = ["case_id", "pet", "point_x", "point_y", "point_z"]


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> list[list]:
    """Manifest rows of four synthetic lesion crops (NIfTI, a point in each lesion) and, in the
    middle, a row whose PET does not exist."""
    from MTLRadiomicsLib.synth import lesion_crop_case

    folder = tmp_path_factory.mktemp("crops")
    rows = []
    for seed in (1, 2, 3, 4):
        case = lesion_crop_case(seed, "lung", crop_size=(40, 40, 40), spacing_mm=(3.0, 3.0, 3.0))
        path = folder / f"crop{seed}.nii.gz"
        sitk.WriteImage(case.pet.to_sitk(), str(path))
        x, y, z = case.lesion_center_lps
        rows.append([f"c{seed}", path, -x, -y, z])
    rows.insert(2, ["broken", folder / "missing.nii.gz", 0, 0, 0])
    return rows


def write_manifest(path: Path, rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def summary_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def results(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in VARYING} for row in rows]


def batch_args(manifest: Path, out: Path, model: Path, *more) -> list:
    return ["batch", manifest, "--out", out, "--model", model, "--samples", "2", "--no-report",
            "--progress", "none", "--mtv-method", "suv2.5", *more]


@pytest.fixture(scope="module")
def serial(crops, tiny_model, tmp_path_factory) -> list[dict]:
    """The summary of the batch run one case after the other."""
    folder = tmp_path_factory.mktemp("serial")
    manifest = write_manifest(folder / "cases.csv", crops)
    process = run_cli(*batch_args(manifest, folder / "out", tiny_model))
    assert process.returncode == 1, process.stdout + process.stderr        # the broken case
    rows = summary_rows(folder / "out" / "summary.csv")
    assert [r["status"] for r in rows] == ["done", "done", "failed", "done", "done"]
    assert all(r["outcome_mean"] for r in rows if r["status"] == "done")  # scores, not withheld
    return rows


def test_workers_give_the_serial_summary_in_manifest_order_and_resume(crops, serial, tiny_model, tmp_path):
    manifest = write_manifest(tmp_path / "cases.csv", crops)
    out = tmp_path / "out"
    process = run_cli(*batch_args(manifest, out, tiny_model, "--workers", "2", "--memory-gb", "64"))
    assert process.returncode == 1, process.stdout + process.stderr
    rows = summary_rows(out / "summary.csv")
    assert [r["case_id"] for r in rows] == [r[0] for r in crops]
    assert [r["status"] for r in rows] == [r["status"] for r in serial]
    assert results(rows) == results(serial)                  # seeded from the input: identical scores
    assert "broken: " in process.stdout and "lowered" not in process.stdout

    # A second run skips the finished cases and analyses only what is missing.
    for case_id in ("c1", "c4"):
        for path in sorted((out / case_id).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (out / case_id).rmdir()
    again = run_cli(*batch_args(manifest, out, tiny_model, "--workers", "2"))
    assert again.returncode == 1, again.stdout + again.stderr
    rows = summary_rows(out / "summary.csv")
    assert [r["status"] for r in rows] == ["done", "skipped (done before)", "failed", "skipped (done before)",
                                           "done"]
    assert results(rows) == results(serial)


def test_the_summary_keeps_manifest_order_whatever_order_the_cases_finish_in(crops, serial, tiny_model, tmp_path,
                                                                             monkeypatch):
    from MTLRadiomicsLib.commands import batch

    def last_first(tasks, plan, initargs, on_done):
        assert plan.workers == 2 and plan.threads == 2
        for task in reversed(tasks):
            on_done(batch.analyse_case(task))

    monkeypatch.setattr(batch, "cpu_cores", lambda: 4)
    monkeypatch.setattr(batch, "run_in_workers", last_first)
    manifest = write_manifest(tmp_path / "cases.csv", crops)
    status = main([str(a) for a in batch_args(manifest, tmp_path / "out", tiny_model, "--workers", "2")])
    assert status == 1
    rows = summary_rows(tmp_path / "out" / "summary.csv")
    assert [r["case_id"] for r in rows] == [r[0] for r in crops]
    assert results(rows) == results(serial)


def test_shards_cover_every_case_once_and_merge_into_the_serial_summary(crops, serial, tiny_model, tmp_path,
                                                                        capsys):
    manifest = write_manifest(tmp_path / "cases.csv", crops)
    out = tmp_path / "out"
    # Shard 1 of 2 (rows 0, 2, 4) in two workers that the memory budget lowers to one.
    first = run_cli(*batch_args(manifest, out, tiny_model, "--shard", "1/2", "--workers", "2",
                                "--memory-gb", "0.3"))
    assert first.returncode == 1, first.stdout + first.stderr
    assert "--workers 2 lowered to 1 by the memory budget" in first.stdout
    assert [r["case_id"] for r in summary_rows(out / "summary_shard_1_of_2.csv")] == ["c1", "broken", "c4"]
    assert not (out / "summary.csv").exists()

    assert main(["batch-merge", str(out)]) == 2                     # shard 2 has not run yet
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "shard(s) 2 of 2 missing" in error and "c2, c3" in error

    second = run_cli(*batch_args(manifest, out, tiny_model, "--shard", "2/2"))
    assert second.returncode == 0, second.stdout + second.stderr
    assert [r["case_id"] for r in summary_rows(out / "summary_shard_2_of_2.csv")] == ["c2", "c3"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["c1", "c2", "c3", "c4"]

    assert main(["batch-merge", str(out)]) == 1                      # merged; one case failed
    report = capsys.readouterr().out
    assert "4 of 5 cases analysed" in report and "failed: broken:" in report
    merged = summary_rows(out / "summary.csv")
    assert [r["case_id"] for r in merged] == [r[0] for r in crops]
    assert results(merged) == results(serial)

    # A shard run again resumes: its finished cases are skipped.
    again = run_cli(*batch_args(manifest, out, tiny_model, "--shard", "2/2", "--workers", "2"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert {r["status"] for r in summary_rows(out / "summary_shard_2_of_2.csv")} == {"skipped (done before)"}


def _fake_shard(out: Path, manifest_rows: list[list], k: int, n: int, tmp_path: Path, options: str = "o") -> None:
    from MTLRadiomicsLib.commands.batch_shards import write_shard

    manifest = write_manifest(tmp_path / f"m{k}.csv", manifest_rows)
    ids = [r[0] for r in manifest_rows]
    rows = [{"case_id": ids[i], "status": "done"} for i in Shard(k, n).positions(len(ids))]
    out.mkdir(exist_ok=True)
    write_shard(out, Shard(k, n), manifest, options, ids, rows)


def test_merge_refuses_mismatched_manifests_and_options_in_one_line(tmp_path, capsys):
    rows = [["a", "a.nii.gz", 0, 0, 0], ["b", "b.nii.gz", 0, 0, 0], ["c", "c.nii.gz", 0, 0, 0]]
    _fake_shard(tmp_path / "out", rows, 1, 2, tmp_path)
    _fake_shard(tmp_path / "out", rows[:2] + [["c", "other.nii.gz", 0, 0, 0]], 2, 2, tmp_path)
    assert main(["batch-merge", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "different manifests" in error

    _fake_shard(tmp_path / "same", rows, 1, 2, tmp_path)
    _fake_shard(tmp_path / "same", rows, 2, 2, tmp_path, options="other")
    assert main(["batch-merge", str(tmp_path / "same")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "different analysis options" in error

    _fake_shard(tmp_path / "elsewhere", rows, 2, 2, tmp_path)          # shards on two disks
    _fake_shard(tmp_path / "here", rows, 1, 2, tmp_path)
    assert main(["batch-merge", str(tmp_path / "here"), str(tmp_path / "elsewhere")]) == 0
    assert [r["case_id"] for r in summary_rows(tmp_path / "here" / "summary.csv")] == ["a", "b", "c"]


def test_ctrl_c_stops_the_workers_and_a_rerun_goes_on(crops, tiny_model, tmp_path):
    ok = [r for r in crops if r[0] != "broken"]
    manifest = write_manifest(tmp_path / "cases.csv", [[f"r{i}", *ok[i % 4][1:]] for i in range(24)])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "MTLRadiomicsLib.cli", *map(str, batch_args(manifest, out, tiny_model,
                                                                                  "--workers", "2"))]
    # Ctrl-C as at a terminal: a shell starts background jobs with SIGINT ignored, which the batch
    # would inherit (and rightly ignore), so the test's process may have it ignored too
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not list(out.glob("r*/result.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)                                   # the first case done (whichever worker was first)
    os.killpg(process.pid, signal.SIGINT)                 # as a terminal's Ctrl-C: the whole group
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    with pytest.raises(ProcessLookupError):               # no worker left behind
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            os.killpg(process.pid, 0)
            time.sleep(0.2)
    before = [r["status"] for r in summary_rows(out / "summary.csv")]
    assert "not analysed (interrupted)" in before and "done" in before
    assert set(before) <= {"done", "not analysed (interrupted)"}
    assert not list(out.glob(".*partial*"))
    again = run_cli(*batch_args(manifest, out, tiny_model, "--workers", "2"))
    assert again.returncode == 0, again.stdout + again.stderr
    after = [r["status"] for r in summary_rows(out / "summary.csv")]
    assert after == ["skipped (done before)" if status == "done" else "done" for status in before]


# ---------------------------------------------------------------- the parts


def test_the_plan_keeps_workers_times_threads_within_the_cores_and_the_memory():
    assert plan_workers(2, 20, 2, 64.0, 1.5) == WorkerPlan(2, 1, [])
    assert plan_workers(4, 20, 16, 64.0, 1.5) == WorkerPlan(4, 4, [])
    assert plan_workers(4, 3, 16, 64.0, 1.5).workers == 3                      # no more than the cases
    capped = plan_workers(8, 20, 4, 64.0, 1.5)
    assert (capped.workers, capped.threads) == (4, 1) and "4 cores" in capped.notes[0]
    memory = plan_workers(4, 20, 8, 5.0, 1.5)
    assert (memory.workers, memory.threads) == (3, 2)
    assert memory.notes == ["--workers 4 lowered to 3 by the memory budget: the largest case needs about 1.5 GB "
                            "and --memory-gb is 5.0 GB"]
    assert plan_workers(4, 20, 8, 0.1, 1.5).workers == 1
    for requested, cores in ((1, 1), (3, 2), (5, 16), (16, 16)):
        plan = plan_workers(requested, 100, cores, 1000.0, 1.0)
        assert plan.workers * plan.threads <= cores


def test_the_memory_estimate_grows_with_the_pet(crops, tmp_path):
    voxels = pet_voxels(Path(crops[0][1]))
    assert voxels == 40 ** 3
    assert pet_voxels(tmp_path / "missing.nii.gz") == 0
    whole_body = 150 * 150 * 350                          # about the synthetic whole bodies measured
    assert 1.0 < case_memory_gb(whole_body) < 2.0 and case_memory_gb(voxels) < case_memory_gb(whole_body)


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2"])
def test_bad_shards_are_refused(text):
    with pytest.raises(MTLRadiomicsError, match="1 <= K <= N"):
        parse_shard(text)


@pytest.mark.parametrize("n_cases, n", [(5, 2), (7, 3), (2, 4), (10, 1)])
def test_shards_cover_every_row_exactly_once(n_cases, n):
    shards = [parse_shard(f"{k}/{n}") for k in range(1, n + 1)]
    positions = sorted(i for s in shards for i in s.positions(n_cases))
    assert positions == list(range(n_cases))


def test_reserved_shard_names_are_not_case_ids(tmp_path):
    from MTLRadiomicsLib.commands.manifest import read_cases

    manifest = write_manifest(tmp_path / "cases.csv", [["summary_shard_1_of_2.csv", "a.nii.gz", 0, 0, 0]])
    with pytest.raises(MTLRadiomicsError, match="taken by batch"):
        read_cases(manifest)


def test_a_worker_keeps_its_model_loaded():
    calls = []

    class Engine:
        @staticmethod
        def _load(choice):
            calls.append(choice)
            return object()

    engine = Engine()
    assert keep_model_loaded(engine, "m")
    assert engine._load("m") is engine._load("m") and calls == ["m"]


def test_the_engine_still_has_the_loader_workers_keep(monkeypatch):
    from MTLRadiomicsLib.analysis import engine

    monkeypatch.setattr(engine, "_load", engine._load)              # restored after the test
    assert keep_model_loaded(engine, "/nonexistent/model") is False      # the cases report the error
    assert getattr(engine._load, "keeps_models", False)


def _work(task: CaseTask) -> CaseOutcome:
    if task.case_id == "crash":
        os._exit(1)                                       # as a worker killed for memory
    time.sleep(0.2)
    return CaseOutcome(task.index, ok=True)


def _init(*_args) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_a_worker_that_dies_fails_only_its_own_case():
    tasks = [CaseTask(i, name, Path(name), Path(name), None, {}) for i, name in
             enumerate(["a", "b", "crash", "c", "d", "e"])]
    outcomes: dict[int, CaseOutcome] = {}
    run_in_workers(tasks, WorkerPlan(2, 1), (), lambda o: outcomes.__setitem__(o.index, o), work=_work,
                   initializer=_init)
    assert sorted(outcomes) == list(range(6))
    assert [outcomes[i].ok for i in range(6)] == [True, True, False, True, True, True]
    assert "ended unexpectedly" in outcomes[2].error


def test_the_batch_benchmark_runs_in_its_smoke_mode(tmp_path):
    from benchmarks import speed

    mode = speed.MODES["smoke"]
    assert speed.MODES["full"].batch.cases == speed.MODES["quick"].batch.cases == 20
    assert speed.MODES["full"].batch.workers == 2 and speed.MODES["full"].batch.kind == "wholebody"
    models = speed.prepare_models(mode.models, tmp_path / "models")
    row = speed.batch_section(mode, models, tmp_path, log=lambda line: None)
    assert row["cases"] == 4 and row["serial_s"] > 0 and row["workers_s"] > 0
    assert row["same_scores"] and row["speed_up"] == pytest.approx(row["serial_s"] / row["workers_s"])
    text = speed.batch_markdown(row, "tiny")
    assert "**6. `batch` of 4 small synthetic lesion crops**" in text and "goal ≥ 1.6×" in text


def test_a_ctrl_c_while_workers_start_is_never_lost():
    """The parent holds Ctrl-C back while it starts a worker (so the new process ignores it from its
    first line); one pressed meanwhile must still stop the batch, at once or right after."""
    from MTLRadiomicsLib.commands.batch_workers import _sigint_held

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # as at a terminal (see above)
    try:
        with pytest.raises(KeyboardInterrupt):
            with _sigint_held():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
            time.sleep(0.05)                               # the signal is taken here at the latest
    finally:
        signal.signal(signal.SIGINT, previous)
