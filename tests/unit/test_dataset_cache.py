"""The dataset cache: reused for the same file and settings, rebuilt when the content or a filter changes, never
used half-written; the parallel first read gives exactly what the sequential one gives."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nextims.data.cache import cache_is_valid
from nextims.data.dataset_cache import DATASET_VERSION, dataset_key, load_dataset
from nextims.data.spectra import SpectraData, filtered_records, load_spectra
from tests.conftest import kill_at_marker

TINY = Path(__file__).resolve().parents[1] / "data" / "massbank_tiny.jsonl"
FILTERS = {"max_above_molecular_ion": 0.1, "isotope_min_abundance": 0.05, "protonation_margin": 1,
           "min_energy_ev": 60, "max_energy_ev": 80}


def config(path: Path, **changes) -> dict:
    return {"name": "tiny", "path": str(path), "format": "massbank_jsonl", "max_mz": 500, "filters": dict(FILTERS),
            "split": {"method": "hash", "salt": "nextims-v1"}, **changes}


def same(a: SpectraData, b: SpectraData) -> bool:
    return (a.records == b.records and np.array_equal(a.spectra, b.spectra) and np.array_equal(a.split, b.split)
            and a.report.to_dict() == b.report.to_dict() and a.content_key() == b.content_key())


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("spectra-*.h5"))


def test_the_cache_is_reused_for_the_same_file_and_settings(tmp_path: Path, caplog) -> None:
    cfg = config(TINY)
    direct = load_spectra(cfg)
    with caplog.at_level("INFO", logger="nextims.data.dataset_cache"):
        first = load_dataset(cfg, tmp_path)
        (path,) = cache_files(tmp_path)
        written = path.stat().st_mtime_ns
        second = load_dataset(cfg, tmp_path)
    assert "read and filtered" in caplog.messages[0] and "from the cache" in caplog.messages[1]
    assert path.stat().st_mtime_ns == written and cache_is_valid(path, dataset_key(cfg), DATASET_VERSION)
    assert same(first, direct) and same(second, direct)
    assert second.report.listed == direct.report.listed  # every peak_above_molecular_ion record still named
    # the split is assigned at each load: another salt reuses the cache and splits anew
    salted = load_dataset(config(TINY, split={"method": "hash", "salt": "other"}), tmp_path)
    assert cache_files(tmp_path) == [path] and not np.array_equal(salted.split, direct.split)


def test_the_cache_is_rebuilt_when_the_content_changes_at_the_same_path(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    lines = TINY.read_text().splitlines()
    data.write_text("\n".join(lines) + "\n")
    before = load_dataset(config(data), tmp_path / "cache")
    data.write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # same path, other content
    after = load_dataset(config(data), tmp_path / "cache")
    assert len(cache_files(tmp_path / "cache")) == 2
    assert len(after) < len(before) and same(after, load_spectra(config(data)))


@pytest.mark.parametrize("change", [{"max_mz": 300}, {"filters": {**FILTERS, "max_energy_ev": 70}},
                                    {"filters": {**FILTERS, "max_above_molecular_ion": None}},
                                    {"encoding": "latin-1"}])
def test_the_cache_is_rebuilt_when_a_setting_that_shapes_the_records_changes(tmp_path: Path, change: dict) -> None:
    load_dataset(config(TINY), tmp_path)
    changed = load_dataset(config(TINY, **change), tmp_path)
    assert len(cache_files(tmp_path)) == 2 and same(changed, load_spectra(config(TINY, **change)))


def test_reading_in_worker_processes_gives_what_one_process_gives(tmp_path: Path) -> None:
    cfg = config(TINY)
    one, two = filtered_records(cfg, workers=0, chunk_size=16), filtered_records(cfg, workers=2, chunk_size=16)
    assert one.records == two.records and one.report.to_dict() == two.report.to_dict()
    for name in ("counts", "bins", "values"):
        assert np.array_equal(getattr(one, name), getattr(two, name))
    assert one.report.kept == len(one.records) and one.report.total_dropped > 0


_KILLED_WRITER = textwrap.dedent("""
    import contextlib, json, sys, time
    from pathlib import Path
    import nextims.data.dataset_cache as dc

    cfg, cache_dir, marker = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    real = dc.atomic_h5

    @contextlib.contextmanager
    def slow(path, key, version):
        with real(path, key, version) as f:
            yield f
            marker.write_text("written")  # every dataset written, the file not yet complete nor in place
            time.sleep(60)

    dc.atomic_h5 = slow
    dc.load_dataset(cfg, cache_dir)
""")


def test_a_killed_build_leaves_no_cache_that_is_used(tmp_path: Path) -> None:
    cfg, cache_dir, marker = config(TINY), tmp_path / "cache", tmp_path / "marker"
    kill_at_marker(_KILLED_WRITER, [json.dumps(cfg), str(cache_dir), str(marker)], marker,
                   "got to the end of its datasets")
    assert cache_files(cache_dir) == [] and len(list(cache_dir.glob(".spectra-*.tmp"))) == 1
    rebuilt = load_dataset(cfg, cache_dir)
    (path,) = cache_files(cache_dir)
    assert cache_is_valid(path, dataset_key(cfg), DATASET_VERSION)
    assert not list(cache_dir.glob(".*.tmp"))  # the killed writer's file is removed by the next write
    assert same(rebuilt, load_spectra(cfg))
