"""checks: one validation style; every message names the field, the value and what is allowed."""
from __future__ import annotations

import pytest

from ganno_jax.checks import check_choice, check_float_range, check_int, require


@pytest.mark.parametrize("call,message", [
    (lambda: check_int("tau", 0), "tau=0 must be an integer >= 1"),
    (lambda: check_int("tau", 2.0), "tau=2.0 must be an integer >= 1"),
    (lambda: check_int("--seeds", True), "--seeds=True must be an integer >= 1"),  # a bool is no count
    (lambda: check_int("width", 5000, 1, 4096), r"width=5000 must be an integer in \[1, 4096\]"),
    (lambda: check_int("id", 2, 0, 1, note=" (--num-processes=2)"), r"id=2 must be an integer in \[0, 1\] \(--num"),
    (lambda: check_float_range("lr", 0.0, 0, low_open=True), "lr=0.0 must be a finite number > 0"),
    (lambda: check_float_range("lr", float("nan"), 0), "lr=nan must be a finite number >= 0"),
    (lambda: check_float_range("gamma", 1.5, 0, 1, low_open=True), r"gamma=1.5 must be a finite number in \(0, 1\]"),
    (lambda: check_float_range("wd", 11.0, 0, 10), r"wd=11.0 must be a finite number in \[0, 10\]"),
    (lambda: check_choice("critic", "mappo", ("independent", "centralised")),
     "critic='mappo' is not valid; allowed: independent, centralised"),
    (lambda: require("num_steps", 60, False, "a multiple of seq_len=8"),
     "num_steps=60 must be a multiple of seq_len=8"),
])
def test_messages_name_field_value_and_range(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_accepted_values_are_returned():
    assert check_int("n", 3) == 3 and check_int("n", 0, low=0) == 0 and check_int("n", 10**9, high=None) == 10**9
    assert check_float_range("x", 0, 0, 10) == 0 and check_float_range("x", 10.0, 0, 10) == 10.0
    assert check_choice("c", "a", ("a", "b")) == "a" and require("f", 7, True, "anything") == 7
