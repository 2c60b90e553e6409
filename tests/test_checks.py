"""core.checks: every boundary check accepts exactly its documented values and names the parameter."""

import math

import numpy as np
import pytest
import torch

from core.checks import check_bool, check_choice, check_generator, check_int, check_number


def test_check_int_accepts_integers_in_range_and_normalises():
    assert check_int("n", 3, 1, 3) == 3
    value = check_int("n", np.int64(7), 0)
    assert value == 7 and type(value) is int
    assert check_int("n", -5) == -5 and check_int("n", 10, high=10) == 10


@pytest.mark.parametrize("value, low, high, expected", [
    (True, 0, None, "an integer >= 0"), (2.0, 0, None, "an integer >= 0"), ("3", 0, None, "an integer >= 0"),
    (0, 1, None, "an integer >= 1"), (11, 1, 10, "an integer in 1..10"), (5, None, 4, "an integer <= 4"),
])
def test_check_int_rejects_with_a_message_naming_value_and_range(value, low, high, expected):
    with pytest.raises(ValueError) as error:
        check_int("steps", value, low, high)
    assert f"steps={value!r}" in str(error.value) and expected in str(error.value)


def test_check_number_bounds_open_and_closed():
    assert check_number("x", 0, 0, 1) == 0.0 and check_number("x", np.float32(0.5), 0, 1) == 0.5
    for value in (0, 1):
        with pytest.raises(ValueError, match=r"in \(0, 1\)"):
            check_number("x", value, 0, 1, open_low=True, open_high=True)
    for bad in (math.nan, math.inf, True, "1", None):
        with pytest.raises(ValueError, match="finite number"):
            check_number("x", bad)
    with pytest.raises(ValueError, match="> 0"):
        check_number("lr", 0.0, 0, open_low=True)
    with pytest.raises(ValueError, match="<= 2"):
        check_number("eta", 3.0, high=2)


def test_check_choice_bool_and_generator():
    assert check_choice("prediction", "v", ("eps", "x0", "v")) == "v"
    with pytest.raises(ValueError, match="prediction='z' is not allowed; expected one of eps, x0, v"):
        check_choice("prediction", "z", ("eps", "x0", "v"))
    assert check_bool("clip", False) is False
    with pytest.raises(ValueError, match="True or False"):
        check_bool("clip", 0)
    generator = torch.Generator()
    assert check_generator("generator", generator) is generator
    assert check_generator("generator", None, optional=True) is None
    with pytest.raises(ValueError, match="torch.Generator or None, got int"):
        check_generator("generator", 3, optional=True)
    with pytest.raises(ValueError, match="must be a torch.Generator, got NoneType"):
        check_generator("generator", None)


def test_check_finite_output_passes_finite_outputs_and_names_the_first_bad_timestep():
    from core.checks import NonFiniteOutputError, check_finite_output

    output = torch.zeros(3, 2, 4)
    assert check_finite_output("out", output, torch.tensor([1, 2, 3])) is output
    output[2, 1, 3] = math.inf
    output[1, 0, 0] = math.nan
    with pytest.raises(NonFiniteOutputError, match=r"^out is not finite \(NaN or infinite\) at timestep index 7 "
                                                   r"\(and 1 more in this batch\): its weights overflow there"):
        check_finite_output("out", output, torch.tensor([4, 9, 7]))  # rows 1 and 2 are bad: t = 9 and 7, the least first
    with pytest.raises(ValueError, match=r"^out is not finite \(NaN or infinite\): "):  # no per-row timesteps given
        check_finite_output("out", output, 5)
    assert issubclass(NonFiniteOutputError, ValueError)  # pages already turn every ValueError of a check into one line
