"""`mtl-radiomics serve`: requests as JSON lines, each model loaded once, bad requests answered with
one error line while the server goes on, rescore, shutdown; and the same numbers as a cold analyze.

A synthetic lesion crop (NIfTI), the tiny random model, 2 uncertainty samples, no report and the
classical MTV "SUV >= 2.5" (the tiny model's own MTV is empty)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

from MTLRadiomicsLib.analysis.engine import analyze
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.analysis.server import ModelCache, Server, parse_request
from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.model.model_file import load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    from MTLRadiomicsLib.synth import lesion_crop_case

    case = lesion_crop_case(3)
    path = tmp_path_factory.mktemp("serve_pet") / "crop.nii.gz"
    sitk.WriteImage(case.pet.to_sitk(), str(path))
    x, y, z = case.lesion_center_lps
    return {"path": path, "ras": [-x, -y, z]}


def options(crop, tiny_model, **more) -> dict:
    return {"model": str(tiny_model), "samples": 2, "mtv_method": "suv2.5", "point": crop["ras"],
            "no_report": True, "device": "cpu", **more}


def serve(lines: list, loads: list) -> list[dict]:
    """Run a server over ``lines`` (dicts or raw strings); its answers. ``loads`` collects each load."""
    def loader(folder: Path):
        loads.append(folder)
        return load_model(folder)

    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    out = io.StringIO()
    assert Server(io.StringIO(text), out, ModelCache(loader=loader), log=io.StringIO()).run() == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def answers(lines: list[dict], rid) -> list[dict]:
    return [line for line in lines if line.get("id") == rid]


@pytest.fixture(scope="module")
def session(crop, tiny_model, tmp_path_factory):
    """Two analyses, bad requests in between, a rescore of the first MTV, a ping, then shutdown
    (and a request after it that must not be answered)."""
    work = tmp_path_factory.mktemp("serve")
    first, second, edited = work / "first", work / "second", work / "rescored"
    loads: list = []
    lines = serve([
        {"id": "a1", "command": "analyze", "pet": str(crop["path"]), "out": str(first),
         "options": options(crop, tiny_model)},
        "this is not json",
        ["not", "an", "object"],
        {"id": "b1", "command": "segment-everything"},
        {"id": "b2", "command": "analyze", "out": str(work / "x")},
        {"id": "b3", "command": "analyze", "pet": str(crop["path"]), "out": str(work / "b3"),
         "options": options(crop, tiny_model, mtv_method="bogus")},
        {"id": "b4", "command": "analyze", "pet": str(work / "missing.nii.gz"), "out": str(work / "b4"),
         "options": options(crop, tiny_model)},
        {"id": "b5", "command": "analyze", "pet": str(crop["path"]), "out": str(work / "b5"),
         "options": options(crop, tiny_model, samples=1)},
        {"id": "a2", "command": "analyze", "pet": str(crop["path"]), "out": str(second),
         "options": options(crop, tiny_model, series_uid=None, report=False)},
        {"id": "r1", "command": "rescore", "pet": str(crop["path"]), "mask": str(first / "mtv.nii.gz"),
         "out": str(edited), "options": {"model": str(tiny_model), "samples": 2, "no_report": True,
                                          "device": "cpu"}},
        {"id": "rp1", "command": "report", "pet": str(crop["path"]), "out": str(edited), "options": {}},
        {"id": "p1", "command": "ping"},
        {"id": "s1", "command": "shutdown"},
        {"id": "late", "command": "ping"},
    ], loads)
    return {"lines": lines, "loads": loads, "first": first, "second": second, "edited": edited}


def test_two_analyses_load_the_model_once(session, tiny_model):
    lines = session["lines"]
    assert lines[0]["status"] == "ready"
    assert session["loads"] == [Path(tiny_model).resolve()]
    (pong,) = answers(lines, "p1")
    assert pong["status"] == "pong" and pong["model_loads"] == 1 and pong["requests"] == 8
    assert pong["pet_reads"] == 1                 # the same scan for both analyses, the rescore and its report
    for rid, out in (("a1", session["first"]), ("a2", session["second"])):
        *progress, done = answers(lines, rid)
        assert [p["stage"] for p in progress][:2] == ["load", "model"] and progress[-1]["stage"] == "done"
        assert all(0 <= p["fraction"] <= 1 for p in progress)
        assert done["status"] == "done" and done["out"] == str(out)
        assert done["result"] == json.loads((out / "result.json").read_text())
        assert done["result"]["scores"]["outcome"] is not None and not done["result"]["scores"]["withheld"]


def test_a_warm_analysis_gives_the_numbers_of_a_cold_one(session, crop, tiny_model, tmp_path):
    served = json.loads((session["second"] / "result.json").read_text())
    cold = analyze(crop["path"], tmp_path / "cold", AnalysisOptions(
        point=tuple(crop["ras"]), model=tiny_model, samples=2, mtv_method="suv2.5", report=False, device="cpu"))
    cold = json.loads((tmp_path / "cold" / "result.json").read_text())
    for key in ("scores", "metrics", "input", "pet", "location", "mtv", "warnings", "outputs"):
        assert served[key] == cold[key], key
    assert sorted(p.name for p in session["second"].iterdir()) == sorted(p.name for p in (tmp_path / "cold").iterdir())


def test_bad_requests_get_one_error_line_and_the_server_goes_on(session, tmp_path):
    lines = session["lines"]
    errors = [line for line in lines if line.get("status") == "error"]
    assert [e["id"] for e in errors] == [None, None, "b1", "b2", "b3", "b4", "b5"]
    assert all(e["error"] and "\n" not in e["error"] for e in errors)
    assert "unknown command 'segment-everything'" in errors[2]["error"]
    assert "'pet'" in errors[3]["error"]
    assert "invalid choice: 'bogus'" in errors[4]["error"]
    assert "missing.nii.gz does not exist" in errors[5]["error"]
    assert "--samples must be at least 2" in errors[6]["error"]
    assert not any(line.get("stage") for line in lines if line.get("id") in ("b1", "b2", "b3", "b5"))
    assert answers(lines, "a2")[-1]["status"] == "done"          # after all of them


def test_rescore_through_the_server_scores_the_edited_mask(session):
    *progress, done = answers(session["lines"], "r1")
    assert done["status"] == "done", done
    result = done["result"]
    first = json.loads((session["first"] / "result.json").read_text())
    assert result["command"] == "rescore" and result["scores"]["mask_source"] == "edited"
    assert result["input"]["edited_mask_name"] == "mtv.nii.gz"
    assert result["metrics"]["mtv_ml"] == pytest.approx(first["metrics"]["mtv_ml"])
    assert "mtv" not in [p["stage"] for p in progress]          # the edited MTV is not segmented again


def test_a_report_request_writes_the_report_of_a_folder_made_without_one(session):
    """The Slicer module rescored without a report; its export asks the server for the report."""
    *progress, done = answers(session["lines"], "rp1")
    assert done["status"] == "done", done
    assert [p["stage"] for p in progress] == ["load", "report", "done"]
    edited = session["edited"]
    assert (edited / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert "re-scored" in (edited / "report.html").read_text()
    assert done["result"]["outputs"]["report_pdf"] == "report.pdf"
    assert done["result"]["outputs"]["report_html"] == "report.html"
    assert done["result"]["scores"] == json.loads((edited / "result.json").read_text())["scores"]


def test_shutdown_ends_the_server_and_nothing_after_it_is_read(session):
    assert session["lines"][-1] == {"id": "s1", "status": "bye"}
    assert not answers(session["lines"], "late")


def test_options_are_checked_as_the_command_line_checks_them(tmp_path):
    request = {"command": "analyze", "pet": "-odd name.nii.gz", "out": str(tmp_path / "o"),
               "options": {"box": [[1, 2, 3], [4, 5, 6]], "point_system": "LPS", "series_uid": "1.2.3",
                           "weight": 70, "fill_holes": True, "report": False, "threshold": 0.4, "seed": 5,
                           "overwrite": True, "progress": "bar"}}
    parsed, overwrite = parse_request(request)
    assert parsed.box == ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0)) and parsed.point_system == "LPS"
    assert parsed.series_uid == "1.2.3" and parsed.overrides.weight_kg == 70.0 and parsed.fill_holes
    assert not parsed.report and parsed.threshold == 0.4 and parsed.seed == 5 and overwrite
    for bad in ({"out": "x"}, {"weight": -1}, {"threshold": 2}, {"no such option": 1}, {"point": [1, 2]},
                {"injection_time": "yesterday"}):
        with pytest.raises(MTLRadiomicsError):
            parse_request({**request, "options": bad})
    with pytest.raises(MTLRadiomicsError):
        parse_request({"command": "rescore", "pet": "p", "out": "o"})          # no mask


def test_the_command_keeps_stdout_for_its_answers(tmp_path):
    """The `serve` command: every stdout line is a JSON answer, even when something prints."""
    code = "import sys; from MTLRadiomicsLib.cli import main; sys.exit(main(['serve']))"
    lines = "\n".join([json.dumps({"id": 1, "command": "ping"}), "{oops",
                       json.dumps({"id": 2, "command": "shutdown"})]) + "\n"
    process = subprocess.run([sys.executable, "-c", code], input=lines, capture_output=True, text=True, cwd=ROOT,
                             timeout=300)
    assert process.returncode == 0, process.stderr
    answered = [json.loads(line) for line in process.stdout.splitlines()]
    assert [a["status"] for a in answered] == ["ready", "pong", "error", "bye"]
    assert answered[1]["model_loads"] == 0


def test_the_protocol_stream_sends_stray_prints_to_stderr(tmp_path):
    code = ("import sys; from MTLRadiomicsLib.commands.serve import _protocol_stream; p = _protocol_stream(); "
            "print('stray'); sys.stdout.flush(); p.write('{\"answer\": 1}\\n'); p.flush()")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert process.stdout == '{"answer": 1}\n' and "stray" in process.stderr


def test_a_kept_scan_is_read_again_when_its_file_changes_and_gives_its_warnings_again(crop, tmp_path, monkeypatch):
    import os
    import shutil
    import warnings

    from MTLRadiomicsLib.analysis import pet_cache
    from MTLRadiomicsLib.analysis.library_warnings import capture_warnings

    path = Path(shutil.copy(crop["path"], tmp_path / "scan.nii.gz"))
    real = pet_cache.read_pet

    def noisy(pet_path, options, captured):
        warnings.warn("a header field was odd")
        return real(pet_path, options, captured)

    monkeypatch.setattr(pet_cache, "read_pet", noisy)
    cache = pet_cache.PetCache()
    seen = []
    for _ in range(2):
        lines: list[str] = []
        with capture_warnings(lines) as captured:
            seen.append(cache(str(path), AnalysisOptions(), captured))
        assert lines == ["test_serve: a header field was odd"]
    assert cache.reads == 1 and seen[0][0] is seen[1][0] and seen[0][1] == seen[1][1]
    os.utime(path, ns=(1, 1))
    with capture_warnings([]) as captured:
        again = cache(str(path), AnalysisOptions(), captured)
    assert cache.reads == 2 and again[0] is not seen[0][0]
    with capture_warnings([]) as captured:
        cache(str(path), AnalysisOptions(series_uid="1.2"), captured)
    assert cache.reads == 3                        # other reading options: read again
