"""`make mutants`'s driver without running mutmut: the working folder of a group, the counts read
from mutmut's result files, the diffs of survivors and the table."""

from __future__ import annotations

import json

import pytest

from benchmarks import mutants

tomllib = pytest.importorskip("tomllib")      # Python 3.11+ reads the settings as mutmut does


def test_a_slicer_group_imports_the_mutated_logic_and_not_the_original(tmp_path):
    group = mutants.BY_NAME["slicer_logic"]
    folder = mutants.prepare(group, tmp_path)
    settings = tomllib.loads((folder / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert settings["source_paths"] == ["MTLRadiomicsModuleLogic"]
    assert settings["only_mutate"] == ["MTLRadiomicsModuleLogic/results.py", "MTLRadiomicsModuleLogic/parameters.py"]
    assert settings["pytest_add_cli_args_test_selection"] == list(group.tests)
    assert (folder / "MTLRadiomicsModuleLogic").resolve() == mutants.ROOT / mutants.LOGIC
    assert not (folder / "MTLRadiomics" / "MTLRadiomicsModuleLogic").exists()     # the tests cannot reach the original
    assert (folder / "MTLRadiomics" / "MTLRadiomics.py").exists()
    engine = mutants.prepare(mutants.BY_NAME["suv"], tmp_path)
    assert tomllib.loads((engine / "pyproject.toml").read_text())["tool"]["mutmut"]["source_paths"] == ["MTLRadiomicsLib"]


def test_changed_tests_start_a_group_again(tmp_path):
    group = mutants.BY_NAME["metrics"]
    folder = mutants.prepare(group, tmp_path)
    (folder / "mutants").mkdir()
    (folder / "mutants" / "kept").write_text("results")
    mutants.prepare(group, tmp_path)
    assert (folder / "mutants" / "kept").exists()                   # same tests: resumed
    (folder / "tests.sha256").write_text("tests of an older version")
    mutants.prepare(group, tmp_path)
    assert not (folder / "mutants").exists()                        # other tests: every mutant again


def test_counts_diffs_and_table_from_mutmut_files(tmp_path):
    group = mutants.Group("g", ("pkg/m.py",), ("Testing/test_x.py",), "a module")
    copy = tmp_path / "mutants" / "pkg"
    copy.mkdir(parents=True)
    (copy / "m.py").write_text(
        "def x_f__mutmut_orig(a):\n    return a + 1\n\n"
        "def x_f__mutmut_1(a):\n    return a - 1\n\n"
        "def x_f__mutmut_2(a):\n    return a + 2\n\n"
        "def x_f__mutmut_3(a):\n    return None\n\n"
        "def x_f__mutmut_4(a):\n    return a\n")
    codes = {"pkg.m.x_f__mutmut_1": 1, "pkg.m.x_f__mutmut_2": 0, "pkg.m.x_f__mutmut_3": 36,
             "pkg.m.x_f__mutmut_4": 33, "pkg.m.x_f__mutmut_5": None}
    (copy / "m.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))
    counted = mutants.count(tmp_path, group)
    tally = counted["modules"]["pkg/m.py"]
    assert (tally["killed"], tally["timeout"], tally["survived"], tally["no_tests"], tally["not_checked"]) == (2, 1, 1, 1, 1)
    assert tally["total"] == 4 and tally["score"] == 0.5
    assert counted["survivor_names"]["pkg/m.py"] == ["pkg.m.x_f__mutmut_2", "pkg.m.x_f__mutmut_4"]
    diffs = mutants.mutant_diffs(copy / "m.py")
    assert diffs["x_f__mutmut_2"] == "-    return a + 1\n+    return a + 2"
    table = mutants.table([{"group": "g", "purpose": "a module", "modules": counted["modules"]}])
    assert "| `pkg/m.py` | a module | 4 | 2 (1) | 1 | 1 | 50.0 % | 1 |" in table      # one mutant not checked
    assert table.splitlines()[-1] == "| **all** | | 4 | 2 | | | **50.0 %** | |"


def test_a_recheck_keeps_the_folder_and_names_only_the_survivors(tmp_path, capsys):
    group = mutants.Group("g", ("pkg/m.py",), ("Testing/test_suv.py",), "a module")
    folder = mutants.prepare(group, tmp_path)
    copy = folder / "mutants" / "pkg"
    copy.mkdir(parents=True)
    codes = {"pkg.m.x_f__mutmut_1": 1, "pkg.m.x_f__mutmut_2": 0, "pkg.m.x_f__mutmut_3": 36,
             "pkg.m.x_f__mutmut_4": 33, "pkg.m.x_f__mutmut_5": None}
    (copy / "m.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))
    (folder / "tests.sha256").write_text("tests of an older version")
    mutants.prepare(group, tmp_path, keep=True)
    assert (copy / "m.py.meta").exists()                             # kept although the tests changed
    assert mutants.survivor_names(folder, group) == ["pkg.m.x_f__mutmut_2", "pkg.m.x_f__mutmut_4"]
    assert mutants.unchecked_names(folder, group) == ["pkg.m.x_f__mutmut_5"]
    mutants.prepare(group, tmp_path, fresh=True, keep=True)
    assert not (folder / "mutants").exists()                         # --fresh always starts again
    with pytest.raises(SystemExit):
        mutants.main(["--fresh", "--recheck", "g"])
    assert "--fresh and --recheck exclude each other" in capsys.readouterr().err
