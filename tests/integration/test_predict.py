"""`python -m nextims.predict`: good and bad inputs, MSP/JSON output, the MSP round trip through matchms and
nextims' own reader, and worker processes giving the same files as the main process alone."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from nextims import PROJECT_ROOT
from nextims.config import build
from nextims.data.featurize import MolGraphFeaturizer
from nextims.errors import DropReport, InputError
from nextims.io import read_spectra
from nextims.models.weights import save_weights
from nextims.predict import compose_predict, model_weights, run_predict
from tests.conftest import train_tiny_weights
from tests.unit.test_envelopes import CL4, monoisotopic_teacher, monoisotopic_teacher_config

SMI = """CCO ethanol
C1CC(( broken
CCN.Cl ethylamine_hydrochloride
C[N+](C)(C)C tetramethylammonium
C[Sn](C)(C)C tetramethyltin
CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC long_alkane
c1ccccc1O phenol
"""


@pytest.fixture
def weights(compose_cfg, tmp_path: Path) -> Path:
    """A tiny trained NEIMS model's weights file."""
    return train_tiny_weights(compose_cfg, tmp_path / "w", "tiny")[0]


def predict(*overrides: str):
    """Compose conf/predict.yaml and run it."""
    return run_predict(compose_predict(["progress=false", *overrides]))


def test_predict_smi_to_msp_reports_failures_and_loads_in_matchms_and_nextims(weights: Path,
                                                                              tmp_path: Path) -> None:
    from matchms.importing import load_from_msp

    smi = tmp_path / "in.smi"
    smi.write_text(SMI)
    out = tmp_path / "out.msp"
    report = predict(f"input={smi}", f"output={out}", f"model={weights}")
    assert report.kept == 3
    assert dict(report.dropped) == {"bad_smiles": 1, "net_charge": 1, "unsupported_element": 1, "too_large": 1}
    errors = (tmp_path / "out.msp.errors.tsv").read_text().splitlines()
    assert errors[0] == "name\treason\tdetail" and len(errors) == 5 and any("tetramethyltin" in e for e in errors)
    spectra = list(load_from_msp(str(out)))
    assert [s.get("compound_name") for s in spectra] == ["ethanol", "ethylamine_hydrochloride", "phenol"]
    ethanol, amine, phenol = spectra
    assert ethanol.get("smiles") == "CCO" and ethanol.get("inchikey") == "LFQSCWFLJHTTHZ-UHFFFAOYSA-N"
    assert ethanol.get("formula") == "C2H6O" and float(phenol.get("parent_mass") or phenol.get("mw") or 94) == 94
    assert "largest organic fragment" in amine.get("comment", "") and amine.get("smiles") == "CCN"
    for s in spectra:
        assert s.peaks.intensities.max() == pytest.approx(999) or s.peaks.intensities.max() == pytest.approx(1.0)
        assert s.peaks.mz.max() <= 94 + 2 and all(float(m).is_integer() for m in s.peaks.mz)
    read_back = DropReport()
    ours = list(read_spectra(out, report=read_back))
    assert read_back.kept == 3 and not read_back.dropped  # no peak at m/z 0 (mz_out_of_range)
    assert [s.get("name") for s in ours] == ["ethanol", "ethylamine_hydrochloride", "phenol"]
    assert all(s.mz.min() >= 1 and s.intensities.max() == 999 for s in ours)


@pytest.fixture
def untrained(tmp_path: Path) -> dict[str, Path]:
    """Weights of two untrained models: a fingerprint MLP, and a GNN that needs graphs."""
    featurizer = {"graph": {"_target_": "nextims.data.featurize.MolGraphFeaturizer", "explicit_hydrogens": False},
                  "fp_bits": 256, "fp_radius": 2}
    graph = MolGraphFeaturizer()
    models = {"mlp": {"_target_": "nextims.models.neims.NEIMS", "input_dim": 256, "num_bins": 120,
                      "hidden_dim": 32, "num_blocks": 1},
              "gnn": {"_target_": "nextims.models.teacher.TeacherGNN", "atom_dim": graph.atom_dim,
                      "bond_dim": graph.bond_dim, "fp_dim": 256, "num_bins": 120, "hidden_dim": 16,
                      "num_layers": 1, "fp_hidden": 16, "joint_dim": 32, "num_blocks": 1,
                      "cleavage_head": True}}
    models["gnn_envelope"] = {**models["gnn"], "isotope_envelope": True, "envelope_width": 7}
    torch.manual_seed(0)
    return {name: save_weights(build(OmegaConf.create(model)), tmp_path / "untrained" / name,
                               {"model": model, "featurizer": featurizer, "data": {"max_mz": 120}})
            for name, model in models.items()}


def assert_workers_write_the_same_files(model: Path, tmp_path: Path, start_method: str) -> None:
    """Two worker processes and none write byte-identical MSP and errors files, over several chunks."""
    smi = tmp_path / "in.smi"
    smi.write_text(SMI * 3)
    files = {}
    for workers in (0, 2):
        out = tmp_path / f"{model.stem}_{start_method}_{workers}.msp"
        predict(f"input={smi}", f"output={out}", f"model={model}", f"workers={workers}", "batch_size=4",
                "num_threads=1", f"start_method={start_method}")
        files[workers] = out.read_bytes(), out.with_name(out.name + ".errors.tsv").read_bytes()
    msp, errors = files[0]
    assert files[2] == files[0] and msp.count(b"Name: ") == 9 and errors.count(b"\n") == 1 + 12


def test_forked_workers_write_the_same_files_as_the_main_process(untrained: dict[str, Path], tmp_path: Path) -> None:
    for model in untrained.values():
        assert_workers_write_the_same_files(model, tmp_path, "fork")


def test_spawned_workers_write_the_same_files_as_the_main_process(untrained: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    assert_workers_write_the_same_files(untrained["gnn"], tmp_path, "spawn")


def test_predict_writes_tetrachloroethylene_s_whole_molecular_cluster(tmp_path: Path) -> None:
    # a teacher predicting one monoisotopic ion at M: its envelope is the C2Cl4 cluster, 164 to 172, not 164-166
    model = monoisotopic_teacher(164, 200)
    card = {"model": monoisotopic_teacher_config(200), "data": {"max_mz": 200},
            "featurizer": {"graph": {"_target_": "nextims.data.featurize.MolGraphFeaturizer",
                                     "explicit_hydrogens": False}, "fp_bits": 64, "fp_radius": 2}}
    weights = save_weights(model, tmp_path / "envelope", card)
    out = tmp_path / "out.msp"
    predict('input="ClC(Cl)=C(Cl)Cl"', f"output={out}", f"model={weights}")
    (spectrum,) = read_spectra(out)
    peaks = dict(zip(spectrum.mz.round().astype(int).tolist(), spectrum.intensities.tolist()))
    assert [m for m in peaks if m % 2 == 0] == [164, 166, 168, 170, 172]
    assert [peaks[m] / 999 for m in (164, 166, 168, 170)] == pytest.approx((CL4 / CL4.max())[:4], abs=0.005)


def test_predict_csv_and_sdf_to_json_with_plots(weights: Path, tmp_path: Path) -> None:
    from rdkit import Chem

    csv_in = tmp_path / "in.csv"
    csv_in.write_text("id,structure\nA,CCO\nB,not_a_smiles\n")
    out = tmp_path / "out.json"
    report = predict(f"input={csv_in}", f"output={out}", f"model={weights}", "smiles_column=structure",
                     "name_column=id", f"plots={tmp_path}/plots")
    records = json.loads(out.read_text())
    assert report.kept == 1 and [r["name"] for r in records] == ["A"] and records[0]["peaks_json"]
    assert len(list((tmp_path / "plots").glob("*.png"))) == 1
    sdf = tmp_path / "in.sdf"
    with Chem.SDWriter(str(sdf)) as w:
        for smi, name in (("CCOC", "methoxyethane"), ("c1ccccc1", "benzene")):
            mol = Chem.MolFromSmiles(smi)
            mol.SetProp("_Name", name)
            w.write(mol)
    out2 = tmp_path / "out2.json"
    predict(f"input={sdf}", f"output={out2}", f"model={weights}")
    assert [r["name"] for r in json.loads(out2.read_text())] == ["methoxyethane", "benzene"]


def test_predict_command_line_default_model_is_the_shipped_teacher(weights: Path, tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for suffix in (".safetensors", ".json"):  # a tiny model under the teacher's name: the default reads that file
        shutil.copy(weights.with_suffix(suffix), shipped / f"teacher_massbank{suffix}")
    assert model_weights(compose_predict([f"paths.weights_dir={shipped}"])) == shipped / "teacher_massbank.safetensors"
    out = tmp_path / "one.msp"
    done = subprocess.run([sys.executable, "-m", "nextims.predict", 'input="CC(=O)C"', f"output={out}",
                           f"paths.weights_dir={shipped}", "progress=false"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "Name: CC(=O)C" in text and "wrote 1 spectra" in done.stdout
    assert "predicted by NExtIMS (teacher_massbank)" in text


def test_predict_missing_model_names_the_shipped_ones(tmp_path: Path) -> None:
    for name in ("neims_massbank", "bondnet_bde_db2"):
        (tmp_path / f"{name}.safetensors").touch()
        (tmp_path / f"{name}.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="teacher_massbank") as err:
        predict("input=CCO", f"output={tmp_path}/x.msp", f"paths.weights_dir={tmp_path}")
    assert "shipped models: bondnet_bde_db2, neims_massbank" in str(err.value) and "model=neims" in str(err.value)
    with pytest.raises(FileNotFoundError, match="model=student"):
        predict("input=CCO", f"output={tmp_path}/x.msp", f"paths.weights_dir={tmp_path}", "model=student")


def test_predict_json_loads_in_matchms(weights: Path, tmp_path: Path) -> None:
    from matchms.importing import load_from_json

    smi = tmp_path / "in.smi"
    smi.write_text(SMI)
    out = tmp_path / "out.json"
    predict(f"input={smi}", f"output={out}", f"model={weights}")
    spectra = load_from_json(str(out))
    assert [s.get("compound_name") for s in spectra] == ["ethanol", "ethylamine_hydrochloride", "phenol"]
    ethanol = spectra[0]
    assert ethanol.get("smiles") == "CCO" and ethanol.get("inchikey") == "LFQSCWFLJHTTHZ-UHFFFAOYSA-N"
    assert ethanol.peaks.intensities.max() == pytest.approx(1.0) and len(ethanol.peaks.mz) > 1
    assert all(float(m).is_integer() for m in ethanol.peaks.mz)


def test_predict_refuses_a_bde_model_by_name() -> None:
    with pytest.raises(InputError, match="bondnet_bde_db2.safetensors is a BDE model .*not a spectrum model"):
        model_weights(compose_predict(["input=CCO", "model=bondnet_bde_db2"]))


def test_predict_missing_input_file_is_one_line_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}  # this checkout's package, run from an empty folder
    done = subprocess.run([sys.executable, "-m", "nextims.predict", "input=no_such_file.smi", "output=x.msp"],
                          cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["nextims.predict: no input file no_such_file.smi"], done.stderr
    assert not list(tmp_path.iterdir())


def test_predict_writes_every_decodable_molecule_and_lists_the_undecodable_line(untrained: dict[str, Path],
                                                                                 tmp_path: Path) -> None:
    smi = tmp_path / "in.smi"
    smi.write_bytes(b"CCO ethanol\nCCC caf\xe9\nc1ccccc1O phenol\n")
    out = tmp_path / "out.msp"
    report = predict(f"input={smi}", f"output={out}", f"model={untrained['mlp']}", "workers=0")
    assert report.kept == 2 and dict(report.dropped) == {"undecodable_line": 1}
    assert out.read_text().count("Name: ") == 2
    assert (tmp_path / "out.msp.errors.tsv").read_text().splitlines()[1:] == [
        "line2\tundecodable_line\tline 2: byte 0xe9 is not UTF-8"]


def test_predict_utf16_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "in.smi").write_text("CCO ethanol\n", encoding="utf-16")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-m", "nextims.predict", "input=in.smi", "output=x.msp"],
                          cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "nextims.predict: in.smi: not UTF-8 text; expected UTF-8 text, one SMILES per line (optionally "
        "followed by a name)"], done.stderr


@pytest.mark.parametrize("setting, allowed", [
    ("batch_size=0", "an integer >= 1"), ("batch_size=-1", "an integer >= 1"),
    ("workers=-2", "auto or an integer >= 0"), ("min_relative_intensity=1.0", "a number >= 0 and < 1"),
    ("min_relative_intensity=-0.5", "a number >= 0 and < 1"), ("num_threads=x", "auto or null or an integer >= 0"), ("max_heavy_atoms=0", "an integer >= 1")])
def test_predict_refuses_out_of_range_settings_before_reading_the_input(setting: str, allowed: str,
                                                                        tmp_path: Path) -> None:
    # the input does not exist: a refusal that names the setting came before the input was read
    with pytest.raises(InputError, match=rf"^{setting.split('=')[0]}=.*: must be {allowed}$"):
        predict(f"input={tmp_path}/no_such.smi", f"output={tmp_path}/x.msp", setting)


def test_predict_refuses_an_output_that_is_a_folder_or_under_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "out.msp"
    folder.mkdir()
    with pytest.raises(InputError, match=f"output={folder}: is a folder"):
        predict(f"input={tmp_path}/no_such.smi", f"output={folder}")
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match=f"cannot create the folder {tmp_path}/file/sub"):
        predict(f"input={tmp_path}/no_such.smi", f"output={tmp_path}/file/sub/x.msp")


def test_predict_errors_file_has_one_row_per_failure_whatever_the_names(untrained: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    import csv

    csv_in = tmp_path / "in.csv"
    with csv_in.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("smiles", "name"), ("C1CC((", "tab\there"), ("C[Sn](C)(C)C", "two\nlines"),
                                  ("CCO", "ethanol"), ("xyz", "back\\slash")])
    out = tmp_path / "out.msp"
    report = predict(f"input={csv_in}", f"output={out}", f"model={untrained['mlp']}", "workers=0")
    assert report.kept == 1 and report.total_dropped == 3
    with (tmp_path / "out.msp.errors.tsv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert [row[0] for row in rows] == ["name", "tab\\there", "two\\nlines", "back\\\\slash"]
    assert all(len(row) == 3 for row in rows)


KILLED_PREDICT = """
import os, random, signal, sys
import nextims.io.msp as msp
write_record, at = msp.format_msp_record, int(sys.argv[1])
def killed_at(*args, **kwargs):
    killed_at.calls = getattr(killed_at, "calls", 0) + 1
    if killed_at.calls == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return write_record(*args, **kwargs)
msp.format_msp_record = killed_at
from nextims.predict import main
sys.argv = ["predict", *sys.argv[2:]]
main()
"""


def test_a_killed_predict_then_rerun_writes_what_an_uninterrupted_run_writes(untrained: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    smi = tmp_path / "in.smi"
    smi.write_text("".join(f"{s} m{i}\n" for i, s in enumerate(["CCO", "c1ccccc1O", "CC(=O)O", "CCN", "CCCl"] * 8)))
    args = [f"input={smi}", f"model={untrained['mlp']}", "workers=0", "batch_size=4", "progress=false"]
    whole = predict(*args, f"output={tmp_path}/whole.msp")
    assert whole.kept == 40
    out = tmp_path / "out.msp"
    at = random.Random(0).randint(2, 39)  # a point inside the output
    killed = subprocess.run([sys.executable, "-c", KILLED_PREDICT, str(at), *args, f"output={out}"],
                            cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not out.exists() and len(list(tmp_path.glob(".out.msp.*.tmp"))) == 1  # nothing half-written is out
    predict(*args, f"output={out}")
    assert out.read_bytes() == (tmp_path / "whole.msp").read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))
