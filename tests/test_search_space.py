"""Hydra overrides -> Optuna search space (sweeper/search_space.py)."""
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweeper.core.errors import ConfigError
from sweeper.search_space import default_sweep_name, integer_axes, parse


def test_comma_lists_form_a_grid_and_fixed_values_pass_through():
    space = parse(["lr=1e-5,3e-4", "scheduler=cosine", "lora.r=8,16"])
    assert space.is_grid
    assert space.fixed == ["scheduler=cosine"]
    assert len(space.grid()) == 4
    assert {p["lr"] for p in space.grid()} == {1e-5, 3e-4}
    assert space.overrides({"lr": 1e-5, "lora.r": 8}) == ["scheduler=cosine", "lora.r=8", "lr=1e-05"]


def test_intervals_and_choices():
    space = parse(["lr=tag(log,interval(1e-5,1e-2))", "lora.r=choice(8,16,32)", "batch_size=range(8,17,8)"])
    assert not space.is_grid
    lr = space.distributions["lr"]
    assert isinstance(lr, FloatDistribution) and lr.log and lr.low == 1e-5
    assert space.distributions["lora.r"] == CategoricalDistribution([8, 16, 32])
    assert space.distributions["batch_size"] == CategoricalDistribution([8, 16])


def test_interval_over_an_integer_setting_samples_integers():
    space = parse(["max_steps=interval(20,60)"])
    integer_axes(space, {"max_steps": 40})
    assert space.distributions["max_steps"] == IntDistribution(20, 60)


def test_log_interval_from_zero_is_refused():
    with pytest.raises(ConfigError, match="start > 0"):
        parse(["lr=tag(log,interval(0,1e-3))"])


def test_added_keys_keep_their_prefix():
    space = parse(["+foo=1,2"])
    assert space.overrides({"foo": 1}) == ["+foo=1"]


def test_default_sweep_name_is_stable_and_depends_on_the_command():
    a = default_sweep_name(["lr=1e-5,3e-4", "scheduler=cosine"], "config")
    assert a == default_sweep_name(["scheduler=cosine", "lr=1e-5,3e-4"], "config")
    assert a != default_sweep_name(["lr=1e-5,3e-4", "scheduler=linear"], "config")
    assert a.startswith("lr-scheduler-")
