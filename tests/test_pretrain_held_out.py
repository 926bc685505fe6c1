"""``experiments/pretrain.py`` trains one policy and exports a controller that ``learned.pretrained`` loads from
its folder (with the exact command); ``experiments/held_out.py`` evaluates it over the optimiser it was trained
with, beside the tuned row and Prodigy, and writes the summary across tasks."""
import json

from ganno_jax import learned


def test_pretrain_exports_a_controller_that_held_out_evaluates(tmp_path, experiment):
    argv = ["--scale", "smoke", "--tasks", "digits-mlp", "--optimizer", "prodigy", "--name", "tiny",
            "--out", str(tmp_path / "pre"), "--no-progress"]
    folder = experiment("pretrain").main(argv)
    ctrl = learned.pretrained(folder)
    assert ctrl.name == "tiny" and ctrl.task.optimizer == "prodigy" and ctrl.task.name == "digits-mlp"
    assert ctrl.provenance["command"].startswith("python experiments/pretrain.py --scale smoke --tasks digits-mlp")

    res = tmp_path / "held"
    tables = experiment("held_out").main(["--smoke", "--controllers", folder, "--tasks", "digits-cnn5", "--baselines",
                                          "constant,prodigy", "--seeds", "2", "--init-lrs", "1e-3", "--out", str(res),
                                          "--no-progress"])
    assert set(tables) == {"digits-cnn5", "summary"}
    saved = json.load(open(res / "digits-cnn5" / "results.json"))
    assert [r["method"] for r in saved["results"]] == ["GANNO tiny (over prodigy)", "constant", "prodigy"]
    assert saved["summary"][-1]["method"] == "tuned adam"
    report = (res / "README.md").read_text()
    assert "Across tasks (reference: Prodigy)" in report and "| GANNO tiny (over prodigy) |" in tables["summary"]
    assert "P(X > prodigy)" in tables["summary"]
