"""python -m minivit.bench: it runs, reports real numbers, and says what is wrong in one line."""
import json
import subprocess
import sys

import pytest


def run_bench(*args):
    return subprocess.run([sys.executable, "-m", "minivit.bench", *args], capture_output=True,
                          text=True, timeout=300)


def test_the_benchmark_times_a_small_model():
    result = run_bench("--model", "C-micro/4", "--batch-size", "4", "--steps", "2", "--warmup",
                       "1", "--threads", "1", "--no-torch", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "C-micro/4" and report["image_size"] == 32
    assert report["minivit"]["train_images_per_second"] > 0
    assert 0 < report["minivit"]["train_mfu"] < 1 and report["matmul_peak_gflops"] > 0


@pytest.mark.parametrize("args, message", [
    (["--model", "Z/3"], "error: unknown model 'Z/3'"),
    (["--model", "C-micro/4", "--image-size", "30"], "is not divisible by patch size 4"),
    (["--threads", "0"], "--threads must be 1 or more"),
])
def test_wrong_arguments_end_with_one_line_and_no_traceback(args, message):
    result = run_bench(*args, "--no-torch", "--steps", "1", "--warmup", "0")
    assert result.returncode in (1, 2) and message in result.stderr
    assert "Traceback" not in result.stderr
