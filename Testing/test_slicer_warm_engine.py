"""The module's warm engine on real MRML (the slicer-core wheel), headless: the first Analyze starts
one ``mtl-radiomics serve`` worker, later runs (analyses and rescores) reuse it, Cancel kills it at
once and the next Analyze starts a new one, a worker killed from outside fails its request and is
started again, and a worker that cannot start leaves the runs to processes of their own.

A synthetic whole-body sample, the tiny random model, 2 uncertainty samples, no report, and the
classical MTV "SUV >= 2.5" (the tiny model's own MTV is empty and would withhold the scores).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (headless MRML) is not installed")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package has no MRML classes", allow_module_level=True)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = PROJECT_ROOT / "MTLRadiomics"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from MTLRadiomicsModuleLogic import (AnalysisError, AnalysisLogic, AnalysisRequest, EngineProcess,  # noqa: E402
                                     ProcessState, dependencies, sample_data, scene_io)
from MTLRadiomicsModuleLogic.engine_process import process_alive, process_group_alive  # noqa: E402
from MTLRadiomicsModuleLogic.warm_engine import WarmEngine, WarmRun, request_from_arguments  # noqa: E402

from MTLRadiomicsLib import load_pet  # noqa: E402
from test_slicer_logic import node_ids, run_to_end  # noqa: E402

TIMEOUT_S = 300


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> sample_data.SamplePet:
    return sample_data.ensure_sample_pet(tmp_path_factory.mktemp("sample_cache"))


@pytest.fixture()
def scene_and_pet(sample):
    scene = slicer.vtkMRMLScene()
    node = scene_io.add_pet_volume_node(scene, load_pet(sample.path), "Sample")
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Lesion")
    point.AddControlPoint(*sample.lesion_ras)
    return scene, node, point


@pytest.fixture()
def logic(scene_and_pet, tiny_model, tmp_path):
    made = AnalysisLogic(scene_and_pet[0], sys.executable, PROJECT_ROOT, temp_root=tmp_path / "runs",
                         bundled_model=tiny_model,
                         device_status=lambda: dependencies.DeviceStatus(False, "no GPU in tests"))
    yield made
    made.stop_engine()


def request(scene_and_pet) -> AnalysisRequest:
    _, node, point = scene_and_pet
    return AnalysisRequest(node, point, mtv_method="suv2.5", device="cpu", samples=2, report=False)


def wait_until_working(logic, job) -> None:
    """Until the worker has sent a progress line of this run (it is really analysing)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not logic.poll(job).events:
        assert time.monotonic() < deadline and job.state == ProcessState.RUNNING, job.process.error_message()
        time.sleep(0.02)


def test_the_first_analysis_starts_the_worker_and_later_runs_reuse_it(logic, scene_and_pet):
    job = logic.start_analysis(request(scene_and_pet))
    assert isinstance(job.process, WarmRun)
    pid = job.process.pid
    events = run_to_end(logic, job)
    assert job.state == ProcessState.SUCCEEDED, job.process.error_message()
    assert [e.stage for e in events][-1] == "done" and events[-1].out == str(job.out_dir)
    first = logic.finish(job)
    assert logic.scores_withheld(first) == ""
    assert logic.warm_engine().starts == 1 and process_alive(pid)

    again = logic.start_analysis(request(scene_and_pet))
    assert again.process.pid == pid                          # no new process
    run_to_end(logic, again)
    second = logic.finish(again)
    assert second.segmentation.GetID() != first.segmentation.GetID()
    assert first.result_json["scores"] == second.result_json["scores"]    # same input, same seed
    assert first.result_json["metrics"] == second.result_json["metrics"]

    rescore = logic.start_rescore(second, request(scene_and_pet))
    assert rescore.process.pid == pid
    run_to_end(logic, rescore)
    rescored = logic.finish(rescore)
    assert rescored.result_json["command"] == "rescore"
    assert rescored.result_json["scores"]["mask_source"] == "edited"
    assert logic.warm_engine().starts == 1 and process_alive(pid)


def test_cancel_kills_the_worker_at_once_and_the_next_analysis_starts_a_new_one(logic, scene_and_pet):
    scene = scene_and_pet[0]
    before = node_ids(scene)
    job = logic.start_analysis(request(scene_and_pet))
    pid = job.process.pid
    wait_until_working(logic, job)
    started = time.monotonic()
    logic.cancel(job)
    assert time.monotonic() - started < 10
    update = logic.poll(job)
    assert update.state == ProcessState.CANCELLED and update.returncode is not None and update.returncode != 0
    assert not process_alive(pid) and not process_group_alive(pid)
    assert not job.run_folder.exists() and node_ids(scene) == before

    job = logic.start_analysis(request(scene_and_pet))
    assert job.process.pid != pid and logic.warm_engine().starts == 2
    run_to_end(logic, job)
    assert logic.finish(job).segmentation is not None


def test_a_worker_killed_from_outside_fails_its_request_and_is_started_again(logic, scene_and_pet):
    scene = scene_and_pet[0]
    before = node_ids(scene)
    job = logic.start_analysis(request(scene_and_pet))
    pid = job.process.pid
    wait_until_working(logic, job)
    os.killpg(pid, signal.SIGKILL)                         # a crash, as far as the module can tell
    run_to_end(logic, job)
    assert job.state == ProcessState.FAILED
    with pytest.raises(AnalysisError) as error:
        logic.finish(job)
    message = str(error.value)
    assert "unexpectedly" in message and "signal 9" in message and "\n" not in message
    assert node_ids(scene) == before and not job.run_folder.exists()

    job = logic.start_analysis(request(scene_and_pet))
    assert job.process.pid != pid and logic.warm_engine().starts == 2
    run_to_end(logic, job)
    assert job.state == ProcessState.SUCCEEDED, job.process.error_message()
    assert logic.scores_withheld(logic.finish(job)) == ""


def test_a_worker_that_cannot_start_leaves_the_runs_to_processes_of_their_own(logic, scene_and_pet):
    broken = [sys.executable, "-c", "import sys; print('mtl-radiomics: error: no serve command here', "
                                    "file=sys.stderr); sys.exit(2)"]
    logic._warm = WarmEngine(lambda: broken)
    job = logic.start_analysis(request(scene_and_pet))
    events = run_to_end(logic, job)
    assert isinstance(job.process, EngineProcess) and job.state == ProcessState.SUCCEEDED
    assert events and events[-1].stage == "done"
    assert "no serve command here" in logic.warm_engine_note and job.notes[-1] == logic.warm_engine_note
    assert logic.finish(job).segmentation is not None
    job = logic.start_analysis(request(scene_and_pet))           # straight to a process of its own
    assert isinstance(job.process, EngineProcess)
    job.process.cancel()


def test_requests_carry_the_command_lines_options():
    arguments = ["analyze", "/data/pet", "--point", "1.5", "-2", "3", "--out", "/tmp/o", "--model", "/m",
                 "--device", "cpu", "--samples", "2", "--progress", "json", "--mtv-method", "suv2.5",
                 "--fill-holes", "--no-report"]
    assert request_from_arguments(arguments, "r7") == {
        "id": "r7", "command": "analyze", "pet": "/data/pet", "out": "/tmp/o",
        "options": {"point": ["1.5", "-2", "3"], "model": "/m", "device": "cpu", "samples": "2",
                    "mtv_method": "suv2.5", "fill_holes": True, "no_report": True}}
    rescore = request_from_arguments(["rescore", "/p", "--mask", "/e.nrrd", "--out", "/o"], "r8")
    assert rescore["mask"] == "/e.nrrd" and rescore["options"] == {}
