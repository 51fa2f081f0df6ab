"""Predict EI mass spectra: `python -m nextims.predict input=<SMILES or file> output=<out.msp|out.json|out.h5>
[model=...]` (.h5: a spectrum index that `python -m nextims.search` searches); `shard=i shards=n` predicts one of
n blocks of the input (nextims.shards), all of them at once as a multirun: `-m 'shard=range(n)' shards=n
hydra/launcher=joblib` (or `predict_slurm`, one SLURM job a shard)."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import hydra
from hydra import compose, initialize
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nextims.config import conf_dir, register_resolvers
from nextims.data.molecules import InputMolecule, PreparedMolecule, prepared_chunks, read_molecules
from nextims.errors import DropReport, InputError
from nextims.config_schema import check_predict_schema
from nextims.io.atomic import atomic_open, check_output_file
from nextims.io.msp import write_msp
from nextims.models.weights import read_card
from nextims.predictor import SpectrumPredictor, weights_file
from nextims.shards import check_shard, shard_bounds, shard_path
from nextims.spectrum import Spectrum, unbin_spectrum
from nextims.training.runtime import thread_count, torch_threads, worker_count

register_resolvers()


# conf/predict.yaml is composed from Hydra's config store, not from conf/, where `model=<name>` would be read
# as a choice in the `model` config group (the architectures) instead of a value of predict's `model` key.
CONFIG_NAME = "nextims_predict"
# MSP text, matchms JSON, or a spectrum index (nextims.search.index)
OUTPUT_SUFFIXES = (".msp", ".json", ".h5")
ConfigStore.instance().store(name=CONFIG_NAME, node=OmegaConf.load(conf_dir() / "predict.yaml"))
# conf/hydra/launcher/*.yaml (predict_slurm: one SLURM job per input shard), as hydra/launcher=<name> options
for _launcher in sorted((conf_dir() / "hydra" / "launcher").glob("*.yaml")):
    ConfigStore.instance().store(group="hydra/launcher", name=_launcher.stem, node=OmegaConf.load(_launcher))


def compose_predict(overrides: Iterable[str] = ()) -> DictConfig:
    """The predict config with overrides, as `python -m nextims.predict <overrides>` would see it."""
    with initialize(version_base="1.3", config_path=None):
        return compose(CONFIG_NAME, overrides=list(overrides))


def model_weights(cfg: DictConfig) -> Path:
    """The weights file of cfg.model: student | teacher | neims (the shipped model of that kind), a shipped
    model's name, or a path to a .safetensors file."""
    model = str(cfg.model)
    choices = (f"choose model=neims (the NEIMS baseline), another of {', '.join(cfg.shipped)}, a shipped "
               "spectrum model's name or a .safetensors file")
    try:
        path = weights_file(str(cfg.shipped.get(model, model)), Path(cfg.paths.weights_dir))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"model={model}: {err}; {choices}") from None
    task = read_card(path).get("task", "spectrum")
    if task != "spectrum":
        what = "a BDE model (bond-dissociation energies per bond)" if task == "bde" else f"a {task!r} model"
        raise InputError(f"model={model}: {path.name} is {what}, not a spectrum model; {choices}")
    return path


def predict_shard(cfg: DictConfig) -> tuple[int, int]:
    """(shard, shards) of cfg: the block of the input this run predicts, and into how many the input is cut."""
    return check_shard(cfg.get("shard", 0), cfg.get("shards", 1))


def predict_output(cfg: DictConfig) -> Path:
    """The file this run writes: cfg.output, or with shards > 1 its shard's file (nextims.shards.shard_path)."""
    return shard_path(Path(str(cfg.output)), *predict_shard(cfg))


def check_predict_config(cfg: DictConfig) -> None:
    """Refuse unusable predict settings and an unwritable output, before any input is read or model loaded."""
    check_predict_schema(cfg)
    output = predict_output(cfg)
    check_output_file(output, OUTPUT_SUFFIXES, "a .msp, .json or .h5 (spectrum index) file name")
    if not os.access(output.parent, os.W_OK):
        raise InputError(f"output={output}: the folder {output.parent} is not writable")


def tsv_field(text: str) -> str:
    """text escaped for one TSV field: backslash doubled, tab, newline and carriage return as \\t, \\n, \\r."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def input_molecules(cfg: DictConfig) -> Iterator[InputMolecule]:
    """The molecules of cfg.input; a missing input file fails here, before any model is loaded."""
    items = read_molecules(str(cfg.input), str(cfg.smiles_column), str(cfg.name_column))
    first = next(items, None)
    return items if first is None else itertools.chain([first], items)


def shard_molecules(cfg: DictConfig, items: Iterator[InputMolecule]) -> tuple[Iterator[InputMolecule], str]:
    """The molecules of cfg.shard's block of the input (all with shards=1; else counted by a first pass over the
    input, in whole batches of cfg.batch_size) and a note naming the block ("" for all)."""
    shard, shards = predict_shard(cfg)
    if shards == 1:
        return items, ""
    count = sum(1 for _ in read_molecules(str(cfg.input), str(cfg.smiles_column), str(cfg.name_column)))
    start, stop = shard_bounds(count, shard, shards, int(cfg.batch_size))
    block = f"input molecules {start + 1}-{stop} of {count}" if stop > start else f"none of {count} input molecules"
    return itertools.islice(items, start, stop), f" (shard {shard} of {shards}: {block})"


def empty_prediction_detail(predictor: SpectrumPredictor, mol: PreparedMolecule, shipped: Mapping[str, str]) -> str:
    """Why a molecule got no spectrum (the model put no intensity on any m/z), the shipped models to try instead
    (shipped: kind -> weights name) and the molecule's note."""
    others = ", ".join(f"model={kind}" for kind, name in shipped.items() if name != predictor.name)
    detail = (f"{predictor.name} predicts no peak at m/z 1-{predictor.max_mz} for this molecule (nominal mass "
              f"{mol.mass}); try another model ({others})")
    return detail + (f"; {mol.note}" if mol.note else "")


def predicted_spectra(predictor: SpectrumPredictor, items: Iterable[InputMolecule], cfg: DictConfig,
                      report: DropReport, failures: list[tuple[str, str, str]]) -> Iterator[Spectrum]:
    """Stream predicted spectra in batches, prepared by cfg.workers processes; molecules that fail are counted,
    listed and skipped."""
    progress = tqdm(unit="mol", disable=not cfg.progress, desc="predicting")
    chunks = prepared_chunks(items, predictor.chunk_preparer(int(cfg.max_heavy_atoms)), int(cfg.batch_size),
                             worker_count(cfg.workers), cfg.start_method)
    for chunk in chunks:
        for name, reason, detail in chunk.failures:
            report.drop(reason, name, detail)
            failures.append((name, reason, detail))
        for mol, binned in zip(chunk.molecules, predictor.predict_features(chunk)):
            comment = (f"predicted by NExtIMS ({predictor.name}), 70 eV EI, unit m/z"
                       + (f"; {mol.note}" if mol.note else ""))
            spectrum = unbin_spectrum(binned, {"id": mol.name, "name": mol.name, "smiles": mol.smiles,
                                               "inchikey": mol.inchikey, "formula": mol.formula, "mw": mol.mass,
                                               "comments": comment}, min_relative=float(cfg.min_relative_intensity))
            if not len(spectrum):
                detail = empty_prediction_detail(predictor, mol, cfg.shipped)
                report.drop("empty_prediction", mol.name, detail)
                failures.append((mol.name, "empty_prediction", detail))
                continue
            report.keep()
            yield spectrum
        progress.update(chunk.size)
    progress.close()


def json_record(spectrum: Spectrum) -> dict[str, Any]:
    """One spectrum in matchms's JSON layout (`matchms.importing.load_from_json`): its metadata keys plus
    `peaks_json`, the [[mz, relative intensity], ...] list."""
    peaks = [[int(m), round(float(i), 4)] for m, i in zip(spectrum.mz, spectrum.intensities)]
    return {**spectrum.metadata, "peaks_json": peaks}


def write_json(spectra: Iterable[Spectrum], path: Path) -> int:
    """Write spectra as a JSON list of json_record objects (readable by matchms), atomically; returns the count."""
    count = 0
    with atomic_open(path, "w", encoding="utf-8") as out:
        out.write("[\n")
        for s in spectra:
            out.write((",\n" if count else "") + json.dumps(json_record(s)))
            count += 1
        out.write("\n]\n")
    return count


def save_plots(spectra: Iterable[Spectrum], folder: Path) -> Iterator[Spectrum]:
    """Pass spectra through, saving a stick plot of each as <folder>/<n>_<name>.png."""
    from nextims.evaluation.plots import close, spectrum_plot

    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(spectra, 1):
        fig = spectrum_plot(s, f"{s.get('name')}  {s.get('smiles')}")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(s.get("name")))[:60]
        fig.savefig(folder / f"{i:05d}_{safe}.png", dpi=80)
        close(fig)
        yield s


def run_predict(cfg: DictConfig) -> DropReport:
    """Predict spectra for cfg.input (its block cfg.shard of cfg.shards) and write cfg.output (the shard's file);
    returns the report of written and failed molecules."""
    check_predict_config(cfg)
    output = predict_output(cfg)
    items, block = shard_molecules(cfg, input_molecules(cfg))
    predictor = SpectrumPredictor.load(model_weights(cfg), str(cfg.device))
    report, failures = DropReport("predict"), []
    spectra = predicted_spectra(predictor, items, cfg, report, failures)
    if cfg.plots:
        spectra = save_plots(spectra, Path(str(cfg.plots)))
    with torch_threads(thread_count(cfg.num_threads, worker_count(cfg.workers))):
        if output.suffix.lower() == ".msp":
            write_msp(spectra, output, intensity_scale=999.0, min_relative=float(cfg.min_relative_intensity))
        elif output.suffix.lower() == ".h5":
            from nextims.search.index import build_index

            # the masses predict wrote (`mw`) are its molecules' own, from their structures
            build_index(output, spectra, source=f"predicted:{predictor.name}", max_mz=predictor.max_mz,
                        mass_from_structure=False)
        else:
            write_json(spectra, output)
    errors = output.with_name(output.name + ".errors.tsv")
    if failures:
        rows = ("\t".join(map(tsv_field, failure)) + "\n" for failure in failures)
        errors.write_text("name\treason\tdetail\n" + "".join(rows), encoding="utf-8")
    else:
        errors.unlink(missing_ok=True)
    print(f"wrote {report.kept} spectra to {output}{block}"
          + (f"; {len(failures)} failed, listed in {errors}" if failures else ""))
    if failures:
        print(report.format())
    return report


@hydra.main(version_base="1.3", config_path=None, config_name=CONFIG_NAME)
def main(cfg: DictConfig) -> None:
    """Hydra entry; an unusable input (a missing file, a model that predicts no spectra) ends it with one line."""
    try:
        run_predict(cfg)
    except (FileNotFoundError, InputError) as err:
        raise SystemExit(f"nextims.predict: {err}") from None


if __name__ == "__main__":
    main()
