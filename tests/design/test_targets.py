"""Target parser: valid forms, margins, and the messages of every kind of bad input."""

import numpy as np
import pytest

from rln_design.design.targets import Objective, Target, TargetError, parse_objective, parse_target


@pytest.mark.parametrize(
    "text, expected",
    [
        ("peak_strain<1.5", Target("peak_strain", "<", 1.5)),
        ("  volume_fraction >= 0.4 ", Target("volume_fraction", ">=", 0.4)),
        ("p99_strain=<1.2e0", Target("p99_strain", "<=", 1.2)),
        ("std_strain>.1", Target("std_strain", ">", 0.1)),
    ],
)
def test_parse_valid(text, expected):
    assert parse_target(text) == expected


def test_margins_and_met():
    t = parse_target("peak_strain<1.5")
    np.testing.assert_allclose(t.margin(np.array([1.2, 1.8])), [0.3, -0.3])
    np.testing.assert_allclose(t.relative_margin(np.array([1.2])), [0.2])
    assert t.met(np.array([1.4, 1.5])).tolist() == [True, False]
    assert parse_target("volume_fraction>=0.4").met(np.array([0.4])).tolist() == [True]
    assert str(t) == "peak_strain<1.5"


@pytest.mark.parametrize(
    "text, message",
    [
        ("peak_strian<1.5", r"unknown statistic 'peak_strian'\. Did you mean 'peak_strain'\?.*"
                            r"Valid statistics: peak_strain, p99_strain"),
        ("peak<2", r"Did you mean 'peak_strain'"),
        ("zzz<2", r"unknown statistic 'zzz'\. Valid statistics:"),
        ("peak_strain==1.5", r"equality targets are not supported"),
        ("1.5>peak_strain", r"write the statistic first"),
        ("peak_strain<", r"malformed target 'peak_strain<': expected STATISTIC OP VALUE"),
        ("peak_strain<abc", r"malformed target"),
        ("", r"empty target"),
        ("volume_fraction>1.4", r"volume fraction lies in \[0, 1\]"),
    ],
)
def test_parse_errors_have_clear_messages(text, message):
    with pytest.raises(TargetError, match=message):
        parse_target(text)


def test_objective():
    assert parse_objective("p99_strain", "minimize").sign == -1.0
    assert Objective("volume_fraction", "maximize").sign == 1.0
    with pytest.raises(TargetError, match="Did you mean 'p99_strain'"):
        parse_objective("p99_strainn")
    with pytest.raises(TargetError, match="'minimize' or 'maximize'"):
        parse_objective("p99_strain", "lower")


@pytest.mark.parametrize(
    "texts, message",
    [
        (["peak_strain<0.5"], "target 'peak_strain<0.5' cannot be met by any structure: the peak of "
                              "eps_xx / imposed eps_xx is at least its mean, which is 1 for every structure"),
        (["peak_strain<1"], "target 'peak_strain<1' cannot be met by any structure"),
        (["mean_strain>1.5"], "target 'mean_strain>1.5' cannot be met by any structure: the mean of "
                              "eps_xx / imposed eps_xx is 1 for every structure"),
        (["mean_strain<0.9"], "target 'mean_strain<0.9' cannot be met"),
        (["std_strain<-0.1"], "target 'std_strain<-0.1' cannot be met by any structure: a standard "
                              "deviation is at least 0"),
        (["peak_strain<1.2", "peak_strain>1.4"], "targets 'peak_strain>1.4' and 'peak_strain<1.2' contradict "
                                                 "each other: no value of peak_strain is > 1.4 and < 1.2"),
        (["p99_strain<=1.3", "p99_strain>1.3"], "targets 'p99_strain>1.3' and 'p99_strain<=1.3' contradict"),
        (["peak_strain<1.3", "p99_strain>=1.4"], "targets 'p99_strain>=1.4' and 'peak_strain<1.3' contradict "
                                                 "each other: p99_strain <= peak_strain in every structure"),
        (["volume_fraction>0.6", "volume_fraction<0.4"], "contradict each other"),
    ],
)
def test_impossible_and_contradictory_targets_are_refused(texts, message):
    from rln_design.design.targets import check_targets, parse_targets

    with pytest.raises(TargetError) as info:
        check_targets(parse_targets(texts))
    assert message in str(info.value)


@pytest.mark.parametrize("texts", [["peak_strain<=1"], ["peak_strain<1.01"], ["mean_strain<=1"],
                                   ["mean_strain>0.5"], ["std_strain<=0"], ["peak_strain>1.4", "p99_strain<1.2"],
                                   ["peak_strain>=1.3", "peak_strain<=1.3"], ["p99_strain>1.2", "peak_strain<1.5"]])
def test_targets_some_structure_can_meet_pass(texts):
    """A field invariant along x (grains as long as the cell) is uniform: peak 1, std 0."""
    from rln_design.design.targets import check_targets, parse_targets

    check_targets(parse_targets(texts))
