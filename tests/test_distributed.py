"""Training across processes with MPI (minivit.distributed), run under `mpiexec -n 2` in
subprocesses: equality with one process is the test.

Skips, saying why, without mpi4py and an mpiexec (`pip install mpi4py mpich`)."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minivit.checkpoint import read_training

ROOT = Path(__file__).resolve().parent.parent
MPIEXEC = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                       f"{os.environ.get('PATH', '')}")
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="mpi4py or mpiexec missing: pip install mpi4py mpich")
TINY = ["--dataset", "digits", "--dim", "16", "--depth", "1", "--heads", "2", "--mlp-dim", "32",
        "--epochs", "2", "--batch-size", "128"]


def launch(n, *args, timeout=240):
    """mpiexec -n n python ARGS (n = 1: python alone), from the repository root."""
    command = [sys.executable, *map(str, args)]
    if n > 1:
        command = [MPIEXEC, "-n", str(n), *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=timeout)


@needs_mpi
@pytest.mark.parametrize("ranks, threads", [(2, 1), (2, 2), (3, 1)])
def test_ranks_and_threads_give_the_whole_batchs_gradients(ranks, threads):
    """float64: N processes of T threads each, against one process on the whole batch."""
    result = launch(ranks, "tests/mpi_gradient_check.py", threads)
    assert result.returncode == 0, result.stderr
    worst = float(result.stdout.split()[-1])
    assert worst < 1e-12, result.stdout


def weights(run):
    return read_training(run / "last.npz").model


@needs_mpi
def test_two_processes_train_bitwise_as_one_process_with_two_threads(tmp_path):
    """1 thread on each of 2 ranks: each rank's part is one shard's weighted gradient, and the
    all-reduce adds the two as one process adds its two threads' (0 + a + b = a + b): the same
    float32 weights, bit for bit."""
    mpi = launch(2, "-m", "minivit.train", *TINY, "--threads", "1", "--out", tmp_path, "--name", "mpi")
    one = launch(1, "-m", "minivit.train", *TINY, "--threads", "2", "--out", tmp_path, "--name", "one")
    assert mpi.returncode == 0 and one.returncode == 0, mpi.stderr + one.stderr
    assert [line[:11] for line in mpi.stdout.splitlines() if line.startswith("epoch ")] == [
        "epoch   1/2", "epoch   2/2"]                 # rank 0 alone prints
    a, b = weights(tmp_path / "mpi"), weights(tmp_path / "one")
    assert all(np.array_equal(a[name], b[name]) for name in a)
    assert read_training(tmp_path / "mpi" / "last.npz").config["processes"] == 2


@needs_mpi
def test_two_processes_of_two_threads_match_four_threads_to_float32_rounding(tmp_path):
    """2 threads on each of 2 ranks against 4 threads in one process: the same shards and
    dropout masks, but the four weighted gradients are added as (a + b) + (c + d) instead of
    ((a + b) + c) + d, so the weights agree to float32 rounding, not bit for bit. (AdamW
    divides by the root of the second moment, which magnifies the rounding of small gradients,
    so after one epoch of 12 steps the weights differ by ~1e-4 of each tensor's largest entry.)"""
    short = [*TINY[:-4], "--epochs", "1", "--batch-size", "128"]
    mpi = launch(2, "-m", "minivit.train", *short, "--threads", "2", "--out", tmp_path, "--name", "mpi")
    one = launch(1, "-m", "minivit.train", *short, "--threads", "4", "--out", tmp_path, "--name", "one")
    assert mpi.returncode == 0 and one.returncode == 0, mpi.stderr + one.stderr
    a, b = weights(tmp_path / "mpi"), weights(tmp_path / "one")
    differences = {name: float(np.abs(a[name] - b[name]).max() / np.abs(b[name]).max())
                   for name in a if np.abs(b[name]).max() > 0}
    print(f"\nworst relative difference: {max(differences.values()):.2e}")
    assert 0 < max(differences.values()) < 1e-3


@needs_mpi
def test_ranks_with_different_options_are_refused_at_start(tmp_path):
    """mpiexec's MPMD form starts rank 1 with another seed: one line, the job ends."""
    command = [MPIEXEC, "-n", "1", sys.executable, "-m", "minivit.train", *TINY, "--seed", "0",
               "--out", str(tmp_path), "--name", "run", ":", "-n", "1", sys.executable, "-m",
               "minivit.train", *TINY, "--seed", "1", "--out", str(tmp_path), "--name", "run"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode != 0
    assert "error: rank 1 has another minivit, configuration" in result.stderr
    assert "Traceback" not in result.stderr


@needs_mpi
def test_a_rank_that_fails_ends_the_job_with_its_rank_named(tmp_path):
    """Rank 1 raises while rank 0 waits in an all-reduce: the job ends (no hang), saying which
    rank failed and why."""
    script = tmp_path / "fail.py"
    script.write_text(
        "import numpy as np\n"
        "from minivit import cli, distributed\n"
        "def main():\n"
        "    world = distributed.world()\n"
        "    if world.rank == 1:\n"
        "        raise RuntimeError('a broken node')\n"
        "    world.sum(np.ones(3))\n"
        "cli.run(main)\n")
    result = launch(2, script, timeout=60)
    assert result.returncode != 0
    assert "error: rank 1 failed" in result.stderr and "a broken node" in result.stderr
    assert result.stderr.count("error: rank 1") == 1  # said once (MPICH's Abort returns)


@needs_mpi
def test_a_run_resumes_only_with_as_many_processes(tmp_path):
    first = launch(2, "-m", "minivit.train", *TINY, "--threads", "1", "--out", tmp_path, "--name", "run")
    assert first.returncode == 0, first.stderr
    places = re.search(r"threads \((.*?)\)", first.stdout.splitlines()[0]).group(1).split(", ")
    assert [place.split(" ")[0] for place in places] == ["0", "1"]  # rank host:pid, for each
    assert all(place.split(":")[-1].isdigit() for place in places)
    alone = launch(1, "-m", "minivit.train", "--resume", tmp_path / "run", "--epochs", "3")
    assert alone.returncode == 1 and "was trained by 2 process(es), not 1" in alone.stderr
    assert "mpiexec -n 2 python -m minivit.train --resume" in alone.stderr
    again = launch(2, "-m", "minivit.train", "--resume", tmp_path / "run", "--epochs", "3")
    assert again.returncode == 0 and "epoch   3/3" in again.stdout, again.stderr


def test_the_ring_all_reduce_model():
    """One process sends nothing; two send the buffer once each way in all (2 steps of n/2);
    many send just under twice the buffer, whatever their number, plus a latency a step."""
    from minivit.distributed import ring_allreduce_seconds as ring
    assert ring(1e6, 1, 1e9, 1e-5) == 0
    assert ring(1e6, 2, 1e9, 0) == pytest.approx(1e-3)
    assert ring(1e6, 64, 1e9, 0) == pytest.approx(2 * 63 / 64 * 1e-3)
    assert ring(0, 64, 1e9, 1e-5) == pytest.approx(126e-5)


@needs_mpi
@pytest.mark.parametrize("nccl", ["1", "0"], ids=["nccl", "no-nccl"])
def test_two_ranks_on_the_gpu_code_path_train_as_on_the_cpu(tmp_path, nccl):
    """--device gpu under mpiexec -n 2, on the strict CuPy stand-in: each rank on its own
    (pretend) GPU, the gradients summed through NCCL's allReduce (emulated over MPI by the
    stand-in), dropout from a CuPy generator per shard. The stand-in computes with NumPy, so the
    GPU code path must give the CPU's weights bit for bit: a check of the code path, not of a
    GPU. Without NCCL (a CuPy built without it) the buffer goes through host memory instead."""
    tiny = [*TINY, "--dropout", "0.1", "--out", str(tmp_path)]
    env = {**os.environ, "STRICT_CUPY_GPUS": "2", "STRICT_CUPY_NCCL": nccl, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "tests" / "strict_cupy"), str(ROOT)])}
    for name, device in (("gpu", ["--device", "gpu"]), ("cpu", ["--threads", "1"])):
        result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "minivit.train", *tiny,
                                 *device, "--name", name], capture_output=True, text=True,
                                env=env, cwd=ROOT, timeout=240)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    a, b = weights(tmp_path / "gpu"), weights(tmp_path / "cpu")
    assert all(np.array_equal(a[name], b[name]) for name in a)


@needs_mpi
def test_a_rank_that_dies_ends_the_job_instead_of_hanging(tmp_path):
    """Rank 1 is killed (SIGKILL: no Python left to report it) while rank 0 waits in an
    all-reduce: MPICH's launcher ends the whole job at once. Its message names the dead
    process's PID, which the run's first line maps to a rank (`rank host:pid` for each: see
    test_a_run_resumes_only_with_as_many_processes)."""
    script = tmp_path / "die.py"
    script.write_text(
        "import os, signal, time\n"
        "import numpy as np\n"
        "from minivit import cli, distributed\n"
        "def main():\n"
        "    world = distributed.world()\n"
        "    if world.rank == 1:\n"
        "        time.sleep(0.5)\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    world.sum(np.ones(3))\n"
        "cli.run(main)\n")
    result = launch(2, script, timeout=60)  # a hang would raise TimeoutExpired
    assert result.returncode != 0
    assert "BAD TERMINATION" in result.stdout + result.stderr


@needs_mpi
def test_a_last_batch_too_small_for_every_rank_is_no_error(tmp_path):
    """1,408 training images in batches of 469 leave a last batch of 1 image: rank 1 gets no
    shard of it, contributes zeros to the all-reduce, and counts no answers."""
    result = launch(2, "-m", "minivit.train", *TINY[:-4], "--epochs", "1", "--batch-size", "469",
                    "--threads", "1", "--out", tmp_path, "--name", "run")
    assert result.returncode == 0 and "epoch   1/1" in result.stdout, result.stderr


@needs_mpi
def test_two_ranks_on_a_machine_with_one_gpu_are_refused(tmp_path):
    env = {**os.environ, "STRICT_CUPY_GPUS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "tests" / "strict_cupy"), str(ROOT)])}
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "minivit.train", *TINY,
                             "--device", "gpu", "--out", str(tmp_path), "--name", "run"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "which has 1 GPU(s): start at most 1 processes a machine" in result.stderr


@needs_mpi
def test_rank_zero_loads_first_and_the_ranks_share_the_cores(tmp_path):
    """first_rank_first: rank 0 makes what the others read (a download, a cache) before they
    look; --threads 0 gives each of the N ranks on a machine its cores / N."""
    script = tmp_path / "first.py"
    script.write_text(
        "import os, time\n"
        "from minivit import distributed, parallel\n"
        "world = distributed.world()\n"
        f"made = {str(tmp_path / 'made')!r}\n"
        "def make():\n"
        "    if world.rank == 0:\n"
        "        time.sleep(0.5)\n"
        "        open(made, 'w').write('cache')\n"
        "    return open(made).read()\n"
        "seen = f'{world.first_rank_first(make)} {parallel.cores_per_rank(world)}'\n"
        f"open(os.path.join({str(tmp_path)!r}, f'rank{{world.rank}}'), 'w').write(seen)\n")
    result = launch(2, script, timeout=60)
    assert result.returncode == 0, result.stderr
    from minivit import parallel
    share = max(1, parallel.cpu_count() // 2)
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}").read_text() == f"cache {share}"
