"""Every CLI through minivit's GPU code path, on the strict CuPy stand-in (tests/strict_cupy).

Each command runs in a subprocess whose `import cupy` finds the stand-in: an implicit
conversion of a device array to NumPy anywhere on these paths raises there, and fails the test
with its traceback. A check of host/device discipline, not of CUDA: nothing here ran on a GPU.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STRICT_CUPY = Path(__file__).resolve().parent / "strict_cupy"


def run(module, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(STRICT_CUPY), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([sys.executable, "-m", f"minivit.{module}", *map(str, args)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    """A digits run trained on the stand-in for 2 epochs, then resumed for a third."""
    out = tmp_path_factory.mktemp("fake-gpu")
    tiny = ["--dataset", "digits", "--device", "gpu", "--dim", "32", "--depth", "2", "--heads",
            "2", "--mlp-dim", "64", "--batch-size", "128", "--out", out, "--name", "run"]
    first = run("train", *tiny, "--epochs", "2")
    resumed = run("train", "--resume", out / "run", "--epochs", "3")
    return out, first, resumed


def test_train_and_resume_run_on_the_gpu_code_path(gpu_run):
    out, first, resumed = gpu_run
    assert "| gpu |" in first and "epoch   2/2" in first
    assert "epoch   3/3" in resumed and "epoch   1/" not in resumed
    assert json.loads((out / "run" / "config.json").read_text())["device"] == "gpu"


def test_evaluate_inspect_and_finetune_run_on_the_gpu_code_path(gpu_run):
    out, _, _ = gpu_run
    assert "(epoch 3) on digits test: accuracy" in run("evaluate", out / "run" / "last.npz",
                                                        "--device", "gpu")
    figures = run("inspect", out / "run" / "last.npz", "--device", "gpu", "--out", out / "fig",
                  "--images", "16", "--show", "4")
    assert "attention_rollout.png" in figures and (out / "fig" / "summary.json").exists()
    tuned = run("finetune", out / "run" / "last.npz", "--dataset", "digits", "--image-size", "16",
                "--epochs", "1", "--device", "gpu", "--out", out, "--name", "tuned")
    assert "| gpu |" in tuned and "epoch   1/1" in tuned


def test_bench_counts_a_step_without_a_sync():
    counts = json.loads(run("bench", "--count", "--device", "gpu", "--model", "C-micro/4",
                            "--batch-size", "4", "--json"))
    step = counts["train step"]
    assert step["syncs"] == 0 and step["copies"] == 0 and 0 < step["ops"] < 1000
    assert counts["forward"]["syncs"] == 0
    assert counts["evaluation"]["syncs"] == 2 and counts["evaluation"]["copies"] <= 1


def test_the_gpu_visits_smoke_checks_pass_on_the_stand_in():
    """tools/gpu/gpu_smoke.py is what a session with a GPU runs first (issue #18); run here on
    the stand-in (all but its timing, minutes on NumPy), it cannot rot unseen between visits."""
    root = Path(__file__).resolve().parent.parent
    smoke = root / "tools" / "gpu" / "gpu_smoke.py"
    source = smoke.read_text()
    names = [line.split("(")[0][4:] for line in source.splitlines()
             if line.startswith("def ") and "\n@check\n" + line in source]
    checks = [name for name in names if name != "step_time_breakdown_gpu_preset"]
    assert len(checks) >= 8, names
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(STRICT_CUPY), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([sys.executable, str(smoke), *checks], capture_output=True,
                            text=True, env=env, timeout=600, cwd=root)
    assert result.returncode == 0 and "smoke: all passed" in result.stdout, result.stdout[-3000:]
    assert result.stdout.count("PASS ") == len(checks)
