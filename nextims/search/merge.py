"""Merge spectrum indexes: `python -m nextims.search.merge output=lib.h5 shards=<n>` joins the shard indexes that
`python -m nextims.predict output=lib.h5 shards=<n> shard=<i>` wrote (nextims.shards), in shard order, into lib.h5,
and their failed molecules into lib.h5.errors.tsv; `inputs=[a.h5,b.h5]` merges any indexes in the order given."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra import compose, initialize
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from nextims.config import conf_dir, register_resolvers
from nextims.errors import InputError
from nextims.io.atomic import atomic_open, check_output_file
from nextims.search.index import merge_indexes, open_index
from nextims.shards import shard_paths

register_resolvers()

CONFIG_NAME = "nextims_merge"
ConfigStore.instance().store(name=CONFIG_NAME, node=OmegaConf.load(conf_dir() / "merge.yaml"))
ERRORS_HEADER = "name\treason\tdetail\n"


def compose_merge(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The merge config with overrides, as `python -m nextims.search.merge <overrides>` would see it."""
    with initialize(version_base="1.3", config_path=None):
        return compose(CONFIG_NAME, overrides=list(overrides))


def merge_inputs(cfg: DictConfig) -> list[Path]:
    """The indexes to merge: the shard files of cfg.output (cfg.shards) or cfg.inputs; InputError when neither or
    both are given."""
    shards, inputs = cfg.shards, cfg.inputs
    if (shards is None) == (inputs is None):
        raise InputError("give shards=<n> (the shards predicted for output=) or inputs=[a.h5,...], not "
                         + ("both" if shards is not None else "neither"))
    if shards is not None:
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 2:
            raise InputError(f"shards={shards}: give the number of shards predicted for output=, an integer >= 2")
        return shard_paths(Path(str(cfg.output)), shards)
    paths = list(inputs) if isinstance(inputs, (ListConfig, list, tuple)) else [inputs]
    if not paths or any(p is None or str(p) == "" for p in paths):
        raise InputError(f"inputs={inputs}: give a list of spectrum indexes (.h5)")
    return [Path(str(p)) for p in paths]


def check_inputs(paths: list[Path], shards: int | None, output: Path) -> list[int]:
    """The entry counts of the indexes at paths; InputError naming every one that is missing, incomplete or not
    an index (by shard number with shards), before anything is written."""
    counts, problems, bad = [], [], []
    for number, path in enumerate(paths):
        try:
            counts.append(len(open_index(path)))
        except InputError as err:
            problems.append(f"shard {number}: {err}" if shards else str(err))
            bad.append(str(number))
    if problems:
        what = f"{len(problems)} of {len(paths)} {'shards' if shards else 'inputs'}"
        hint = (f"; predict them (python -m nextims.predict -m input=... output={output} shards={shards} "
                f"'shard={','.join(bad)}') and merge again" if shards else "")
        raise InputError(f"cannot merge, {what} unusable: " + "; ".join(problems) + hint)
    return counts


def merge_errors(paths: list[Path], output: Path) -> int:
    """Join the <input>.errors.tsv files of paths (failed molecules, in input order) into <output>.errors.tsv,
    atomically, or remove a stale one when none failed; returns the rows."""
    parts = []
    for path in paths:
        errors = path.with_name(path.name + ".errors.tsv")
        if errors.is_file():
            text = errors.read_text(encoding="utf-8")
            text = text[len(ERRORS_HEADER):] if text.startswith(ERRORS_HEADER) else text
            parts.append(text if not text or text.endswith("\n") else text + "\n")
    rows = "".join(parts)
    target = output.with_name(output.name + ".errors.tsv")
    if rows:
        with atomic_open(target, "w", encoding="utf-8", newline="") as out:
            out.write(ERRORS_HEADER + rows)
    else:
        target.unlink(missing_ok=True)
    return rows.count("\n")


def run_merge(cfg: DictConfig) -> int:
    """Merge the indexes cfg names into cfg.output (and their errors files); returns the entries written."""
    output = Path(str(cfg.output))
    check_output_file(output, (".h5",), "a .h5 (spectrum index) file name")
    paths = merge_inputs(cfg)
    counts = check_inputs(paths, cfg.shards, output)
    written = merge_indexes(paths, output)
    failed = merge_errors(paths, output)
    errors = output.with_name(output.name + ".errors.tsv")
    print(f"merged {len(paths)} {'shard indexes' if cfg.shards else 'indexes'} "
          f"({' + '.join(map(str, counts))} spectra) into {output}: {written} spectra"
          + (f"; {failed} failed molecules listed in {errors}" if failed else ""))
    return written


@hydra.main(version_base="1.3", config_path=None, config_name=CONFIG_NAME)
def main(cfg: DictConfig) -> None:
    """Hydra entry; a missing or incomplete input ends it with one line, exit code 2."""
    try:
        run_merge(cfg)
    except (FileNotFoundError, InputError) as err:
        print(f"nextims.search.merge: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
