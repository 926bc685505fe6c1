"""experiments/schedule_shapes.py (GANNO Fig. 5): writes a decodable PNG and a CSV of the nine schedules,
refuses to overwrite, rejects bad input."""
import csv
import os

import matplotlib.pyplot as plt
import numpy as np
import pytest

from ganno_jax.baselines.schedules import FIGURE5_SCHEDULES, make_schedule


def test_writes_the_nine_schedules_as_png_and_csv(tmp_path, experiment):
    out = str(tmp_path / "fig5")
    paths = experiment("schedule_shapes").main(["--out", out, "--steps", "40", "--init-lr", "0.01"])
    image = plt.imread(paths["png"])
    assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0  # decodes, not blank
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["update", *FIGURE5_SCHEDULES] and len(FIGURE5_SCHEDULES) == 9
    assert [int(r["update"]) for r in rows] == list(range(40))
    for name in FIGURE5_SCHEDULES:  # the values the evaluation applies
        np.testing.assert_allclose([float(r[name]) for r in rows], make_schedule(name, 0.01, 40)(np.arange(40)),
                                   rtol=1e-6)
    with pytest.raises(FileExistsError, match="--overwrite"):
        experiment("schedule_shapes").main(["--out", out])
    assert sorted(os.listdir(out)) == ["schedule_shapes.csv", "schedule_shapes.png"]


@pytest.mark.parametrize("argv,match", [(["--steps", "0"], "--steps=0 must be an integer >= 1"),
                                        (["--init-lr", "-1"], "--init-lr=-1.0 must be a finite number > 0")])
def test_bad_input_is_a_value_error(tmp_path, experiment, argv, match):
    with pytest.raises(ValueError, match=match):
        experiment("schedule_shapes").main(["--out", str(tmp_path / "x"), *argv])
    assert not os.path.exists(tmp_path / "x")
