"""Hydra overrides -> Optuna search space (sweeper/search_space.py)."""
import logging
import re

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


def test_nothing_swept_is_a_grid_of_one_point():
    space = parse(["lr=3e-3", "scheduler=cosine"])
    assert space.is_grid and space.grid() == [{}]
    assert space.overrides({}) == ["lr=3e-3", "scheduler=cosine"]


def test_intervals_and_choices():
    space = parse(["lr=tag(log,interval(1e-5,1e-2))", "lora.r=choice(8,16,32)", "batch_size=range(8,17,8)"])
    assert not space.is_grid
    lr = space.distributions["lr"]
    assert isinstance(lr, FloatDistribution) and lr.log and lr.low == 1e-5
    assert space.distributions["lora.r"] == CategoricalDistribution([8, 16, 32])
    assert space.distributions["batch_size"] == IntDistribution(8, 16, step=8)


def test_integer_range_is_an_ordered_axis_and_still_a_grid():
    space = parse(["lora.r=range(8,33,8)", "lr=1e-3,1e-2"])
    assert space.distributions["lora.r"] == IntDistribution(8, 32, step=8)
    assert space.is_grid and len(space.grid()) == 8
    assert sorted({p["lora.r"] for p in space.grid()}) == [8, 16, 24, 32]
    assert all(type(p["lora.r"]) is int for p in space.grid())
    assert parse(["lora.r=range(32,7,-8)"]).distributions["lora.r"] == IntDistribution(8, 32, step=8)
    assert not parse(["lora.r=range(8,33,8)", "lr=interval(1e-5,1e-3)"]).is_grid


def test_float_range_stays_a_list():
    dist = parse(["x=range(0.5,2.0,0.5)"]).distributions["x"]
    assert isinstance(dist, CategoricalDistribution) and len(dist.choices) == 3


def test_an_integer_interval_is_not_a_grid_axis():
    assert not parse(["max_steps=interval(20,60)"]).is_grid


def test_glob_is_refused_naming_what_is_accepted():
    with pytest.raises(ConfigError, match=r"glob\(\) is not supported in a sweep; accepted: .*range\(") as err:
        parse(["model=glob(*)"])
    assert err.value.field == "model" and "\n" not in str(err.value)


@pytest.mark.parametrize("raw", ["lr=tag(lg,interval(1e-5,1e-3))", "lr=tag(lg,log,interval(1e-5,1e-3))"])
def test_unknown_tags_are_refused_naming_log(raw):
    with pytest.raises(ConfigError, match="unknown tag lg; accepted: log"):
        parse([raw])


def test_log_tag_on_a_list_is_refused():
    with pytest.raises(ConfigError, match="interval only"):
        parse(["lr=tag(log,choice(1e-3,1e-2))"])


def test_repeated_values_are_dropped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="sweeper"):
        space = parse(["lr=1e-3,0.001,1e-2,1e-3", "lora.r=8,16"])
    assert space.distributions["lr"] == CategoricalDistribution([1e-3, 1e-2])
    assert len(space.grid()) == 4
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == ["lr: repeated values dropped: 0.001, 0.001 (each value runs once)"]
    assert parse(["x=1,1.0"]).distributions["x"] == CategoricalDistribution([1, 1.0])  # int vs float: two


def test_interval_over_an_integer_setting_samples_integers():
    from sweeper.core.schema import is_integer_axis
    space = parse(["max_steps=interval(20,60)", "lora.r=tag(log,interval(4,64))", "micro_batch_size=interval(1,8)",
                   "lr=interval(1e-4,1e-3)", "lora.alpha=interval(8,32)", "scheduler.warmup=interval(2,20)",
                   "+not_in_schema=interval(1,4)"])
    integer_axes(space, is_integer_axis)
    assert space.distributions["max_steps"] == IntDistribution(20, 60)
    assert space.distributions["lora.r"] == IntDistribution(4, 64, log=True)
    assert space.distributions["micro_batch_size"] == IntDistribution(1, 8)  # Any-typed: an integer or auto
    assert space.distributions["lr"] == FloatDistribution(1e-4, 1e-3)
    assert space.distributions["lora.alpha"] == FloatDistribution(8.0, 32.0)  # a float setting stays float
    assert space.distributions["scheduler.warmup"] == IntDistribution(2, 20)  # whole numbers from 1: steps
    assert space.distributions["not_in_schema"] == FloatDistribution(1.0, 4.0)
    ratio = parse(["scheduler.warmup=interval(0,0.2)"])
    integer_axes(ratio, is_integer_axis)
    assert ratio.distributions["scheduler.warmup"] == FloatDistribution(0.0, 0.2)  # a ratio of the run
    with pytest.raises(ConfigError, match=r"lora.r: .*accepted: interval\(5, 7\)"):
        integer_axes(parse(["lora.r=interval(4.5,7.5)"]), is_integer_axis)


def test_log_interval_from_zero_is_refused():
    with pytest.raises(ConfigError, match="start > 0"):
        parse(["lr=tag(log,interval(0,1e-3))"])


def test_added_keys_keep_their_prefix():
    space = parse(["+foo=1,2"])
    assert space.overrides({"foo": 1}) == ["+foo=1"]


def test_default_sweep_name_is_stable_names_the_swept_keys_and_depends_on_the_command():
    args = ["lr=1e-5,3e-4", "scheduler=cosine", "eval_interval=5"]
    name = default_sweep_name(parse(args), args, "config")
    assert name == default_sweep_name(parse(args[::-1]), args[::-1], "config")
    other = ["lr=1e-5,3e-4", "scheduler=linear", "eval_interval=5"]
    assert name != default_sweep_name(parse(other), other, "config")
    assert name.startswith("lr-") and "eval_interval" not in name  # the swept keys only


@pytest.mark.parametrize("raw, says", [("model=glob(*)", "glob() is not supported"),
                                       ("lr=glob(*,exclude=x)", "glob() is not supported"),
                                       ("lr=tag(lg,interval(1e-5,1e-3))", "unknown tag lg")])
def test_check_grammar_refuses_before_anything_iterates_the_sweep(raw, says):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from sweeper.search_space import check_grammar

    with pytest.raises(ConfigError, match=re.escape(says)):
        check_grammar(OverridesParser.create().parse_override(raw), raw)
    check_grammar(OverridesParser.create().parse_override("lr=1e-3,1e-2"), "lr=1e-3,1e-2")  # fine: no error
