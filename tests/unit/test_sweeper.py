"""The Optuna sweeper plugin: Hydra sweep syntax to Optuna distributions, and its option checks."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.nextims_optuna_sweeper._impl import OptunaSweep, search_space


def test_sweep_syntax_to_distributions() -> None:
    space, fixed = search_space(["a=choice(512, 1024)", "b=range(1, 5)", "c=interval(0.0, 0.5)",
                                 "d=tag(log, interval(1e-4, 3e-3))", "e=tag(int, interval(2, 6))",
                                 "f=range(0.5, 2.0, 0.5)", "data=tiny", "+extra=1"])
    assert space["a"] == CategoricalDistribution([512, 1024])
    assert space["b"] == IntDistribution(1, 4)  # Hydra's range excludes stop
    assert space["c"] == FloatDistribution(0.0, 0.5)
    assert space["d"] == FloatDistribution(1e-4, 3e-3, log=True)
    assert space["e"] == IntDistribution(2, 6)
    assert space["f"] == CategoricalDistribution([0.5, 1.0, 1.5])
    assert fixed == ["data=tiny", "+extra=1"]


def test_command_line_overrides_the_search_space_and_fixes_values() -> None:
    space, fixed = search_space(["a=choice(1, 2)", "b=choice(3, 4)", "a=7", "b=choice(5, 6)"])
    assert set(space) == {"b"} and space["b"] == CategoricalDistribution([5, 6])
    assert fixed == ["a=7"]


@pytest.mark.parametrize("option", [{"direction": "up"}, {"max_failure_rate": 2.0}, {"n_jobs": 0},
                                    {"keep_only_best": ["../elsewhere"]}, {"keep_only_best": ["/abs"]}])
def test_bad_options_are_rejected(option: dict) -> None:
    settings = dict(sampler=None, direction="maximize", storage=None, study_name=None, n_trials=2, n_jobs=2,
                    max_failure_rate=0.0, params={}, keep_only_best=["checkpoints"])
    with pytest.raises(ValueError):
        OptunaSweep(**{**settings, **option})
