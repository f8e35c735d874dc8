"""Bad input through the real command-line tools, each in a subprocess of its own.

Every case runs `python -m minivit.TOOL ...` in a fresh, empty working directory (so the default
`runs/` and `data/` land there) and checks what a user sees and what is left on disk:
- the exit code: 2 for a flag argparse refuses, 1 for any other mistake;
- stderr: "warning: ..." lines may come first, then exactly one line, which starts with
  "error: " (or "python -m minivit.TOOL: error: " from argparse) and names the culprit;
- no "Traceback" anywhere, and nothing on stdout (no header, no progress bar);
- nothing left behind that a later run would trust: the working directory holds no file (no run
  directory, no cache, no checkpoint), and the files the cases read are unchanged.
The files the cases need (a finished digits run, damaged checkpoints, hostile archives and
images) are made once for the module. Then a few behaviours of run directories: --overwrite,
two runs into one directory, --resume with flags it ignores.
"""
import csv
import dataclasses
import io
import json
import os
import pickle
import select
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minivit
from minivit.checkpoint import load_arrays, read_training, write_training
from minivit.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
# the architecture of the module's finished run, as flags
TINY_FLAGS = ["--model", "C-micro/4", "--dim", "16", "--depth", "1", "--heads", "2",
              "--mlp-dim", "32", "--patch-size", "4", "--batch-size", "256", "--augment", "none"]


def environment():
    """This environment, with minivit importable from anywhere and no network for CIFAR."""
    return {**os.environ, "MINIVIT_CIFAR_URL": "file:///nonexistent/minivit-test",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1"}


def cli(module, *args, cwd, timeout=120):
    """`python -m minivit.MODULE ARGS` run in `cwd`."""
    return subprocess.run([sys.executable, "-m", f"minivit.{module}", *args], cwd=cwd,
                          env=environment(), capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, module, code, culprit):
    """Exit `code`, no traceback, nothing on stdout, and after any warnings exactly one line on
    stderr: an error that contains `culprit`."""
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything, everything
    assert result.returncode == code, everything
    assert result.stdout == "", everything
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, result.stderr
    prog = "train" if module == "finetune" else module  # finetune is train under another name
    prefix = f"python -m minivit.{prog}: error: " if code == 2 else "error: "
    assert lines[0].startswith(prefix), lines[0]
    assert culprit in lines[0], f"{culprit!r} not in {lines[0]!r}"
    assert "allow_pickle" not in everything  # never the advice to unpickle a file


def left_behind(folder):
    """Every file under `folder`, and every folder but an empty data/ (a cache's home)."""
    found = []
    for parent, folders, files in os.walk(folder):
        found += [os.path.join(parent, name) for name in files]
        found += [os.path.join(parent, name) for name in folders
                  if not (parent == str(folder) and name == "data")]
    return sorted(os.path.relpath(path, folder) for path in found)


def snapshot(folder):
    """{path: (size, mtime, mode)} of everything under `folder` but the lock files that runs
    (refused ones too) leave in a run directory: empty, and never read."""
    result = {}
    for parent, folders, files in os.walk(folder):
        for name in folders + [name for name in files if name != ".lock"]:
            path = os.path.join(parent, name)
            info = os.lstat(path)
            result[os.path.relpath(path, folder)] = (info.st_size if name in files else None,
                                                     None if name in folders else info.st_mtime_ns,
                                                     info.st_mode)
    return result


# --- the files the cases read --------------------------------------------------------------------

def tiny_run(run_dir, epochs=1):
    """A finished digits run of a 2,794-parameter ViT (about a second)."""
    return train(TrainConfig(dataset="digits", model="C-micro/4", dim=16, depth=1, heads=2,
                             mlp_dim=32, patch_size=4, epochs=epochs, batch_size=256,
                             augment="none"), run_dir)


def png_header(width, height):
    """A PNG that declares width x height pixels and holds none: PIL refuses it on opening as a
    decompression bomb when it has more than twice Image.MAX_IMAGE_PIXELS."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def image_folder(root, bad_image):
    """PATH/{train,test}/{a,b}/ok.png of 8x8 pixels, and train/a/x.png holding `bad_image`."""
    for split in ("train", "test"):
        for name in ("a", "b"):
            os.makedirs(root / split / name)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / split / name / "ok.png")
    (root / "train" / "a" / "x.png").write_bytes(bad_image)


def tar_gz(path, members):
    """A .tar.gz of {name: bytes, or ("link", target)}."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))


class RunsACommand:
    """What a malicious pickle holds: unpickled, it would run a shell command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


CIFAR10_MEMBERS = [f"cifar-10-batches-py/{name}" for name in
                   (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")]


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """A folder of everything the cases read; its snapshot is taken after it is made."""
    root = tmp_path_factory.mktemp("bad_input")
    tiny_run(root / "run")
    checkpoint = read_training(root / "run" / "last.npz")

    def variant(name, **change):
        (root / name).mkdir()
        write_training(root / name / "last.npz", dataclasses.replace(checkpoint, **change))

    variant("unknown_key", config={**checkpoint.config, "colour": "red"})
    variant("wrong_type", config={**checkpoint.config, "epochs": "many"})
    variant("zero_batch", config={**checkpoint.config, "batch_size": 0})
    variant("unknown_optimizer", config={**checkpoint.config, "optimizer": "adam"})
    variant("no_pos_embed", model={k: v for k, v in checkpoint.model.items() if k != "pos_embed"})
    variant("bad_model_config", model_config={**checkpoint.model_config, "colour": 1})
    variant("bad_stem_widths", model_config={**checkpoint.model_config, "stem_widths": "os.system"})
    variant("bad_stem_option", config={**checkpoint.config, "stem": "0,64"})
    variant("no_dataset", config={k: v for k, v in checkpoint.config.items() if k != "dataset"})
    variant("no_num_classes", model_config={k: v for k, v in checkpoint.model_config.items()
                                            if k != "num_classes"})
    variant("short_rows", metrics=[{"epoch": 1}])
    variant("no_metrics", metrics=None)  # and no metrics.csv beside it
    variant("two_rows", metrics=checkpoint.metrics * 2)  # a record of 2 epochs at epoch 1
    (root / "empty").mkdir()
    (root / "not_zip").mkdir()
    (root / "not_zip" / "last.npz").write_text("this is not a zip file\n")
    (root / "weights").mkdir()
    minivit.save(minivit.ViT(**checkpoint.model_config), root / "weights" / "last.npz")
    (root / "notes.txt").write_text("not weights\n")
    # a .safetensors header that claims a terabyte, and one whose tensor runs past the file's end
    (root / "long_header.safetensors").write_bytes(struct.pack("<Q", 10 ** 12) + b"{}")
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}})
    (root / "cut_short.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header.encode() + bytes(16))

    np.savez(root / "pickled.npz", a=np.array([{"x": 1}], dtype=object))
    with zipfile.ZipFile(root / "huge_shape.npz", "w") as archive:  # 40 GB declared, 64 B held
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)})
        archive.writestr("a.npy", header.getvalue() + bytes(64))
    with zipfile.ZipFile(root / "deflate_bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("a.npy", "w", force_zip64=True) as member:  # 64 MiB of zeros in ~64 KB
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f4", "fortran_order": False, "shape": (16 * 2 ** 20,)})
            for _ in range(64):
                member.write(bytes(2 ** 20))

    image_folder(root / "folder_junk", os.urandom(300))
    image_folder(root / "folder_rgb", png_header(8, 8))
    (root / "folder_rgb" / "train" / "a" / "x.png").unlink()  # only good 8 x 8 RGB images
    with zipfile.ZipFile(root / "many_members.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        for k in range(40):  # 40 members of 1 MiB of zeros: each small, together a bomb
            archive.writestr(f"a{k}.npy", bytes(2 ** 20))
    with zipfile.ZipFile(root / "overflow_shape.npz", "w") as archive:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f8", "fortran_order": False, "shape": (2 ** 62, 2 ** 62)})
        archive.writestr("a.npy", header.getvalue() + bytes(64))
    with open(root / "long_name.tar", "wb") as f:  # a GNU long-name header declaring 300 MB
        long_name = tarfile.TarInfo("././@LongLink")
        long_name.type, long_name.size = tarfile.GNUTYPE_LONGNAME, 300 << 20
        f.write(long_name.tobuf(format=tarfile.GNU_FORMAT) + bytes(2 << 20))
    (root / "a_file").write_text("not a folder\n")
    with zipfile.ZipFile(root / "bad_deflate.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.npy", bytes(range(256)) * 64)
    damaged = bytearray((root / "bad_deflate.npz").read_bytes())
    damaged[40:60] = b"\xff" * 20  # inside the member's deflate stream
    (root / "bad_deflate.npz").write_bytes(bytes(damaged))
    image_folder(root / "folder_bomb", png_header(20_000, 20_000))
    with pytest.raises(Image.DecompressionBombError):  # the bomb is one, as PIL sees it
        Image.open(root / "folder_bomb" / "train" / "a" / "x.png")

    (root / "corrupt.tar.gz").write_bytes(os.urandom(2000))
    tar_gz(root / "link.tar.gz", {CIFAR10_MEMBERS[0]: ("link", "/etc/passwd")})
    tar_gz(root / "junk.tar.gz", {name: os.urandom(500) for name in CIFAR10_MEMBERS})
    tar_gz(root / "malicious.tar.gz", {
        name: pickle.dumps(RunsACommand(f"touch {root}/PWNED"), protocol=2)
        for name in CIFAR10_MEMBERS})
    (root / "read_only").mkdir()
    return root


@pytest.fixture(scope="module")
def fx_snapshot(fx):
    return snapshot(fx)


# --- the cases: (tool, arguments, exit code, what the line must name); {fx} is the folder above --

TRAIN = [
    (["--dataset", "digits", "--epochs", "0"], 2, "--epochs must be at least 1, not 0"),
    (["--dataset", "digits", "--batch-size", "0"], 2, "--batch-size must be at least 1"),
    (["--dataset", "digits", "--dim", "0"], 2, "--dim must be at least 1"),
    (["--dataset", "digits", "--image-size", "0"], 2, "--image-size must be at least 1"),
    (["--dataset", "digits", "--lr", "-0.1"], 2, "--lr must be at least 0.0, not -0.1"),
    (["--dataset", "digits", "--clip-norm", "-1"], 2, "--clip-norm must be at least 0.0"),
    (["--dataset", "digits", "--warmup-epochs", "-1"], 2, "--warmup-epochs must be at least 0.0"),
    (["--dataset", "digits", "--label-smoothing", "2"], 2, "--label-smoothing must be below 1.0, not 2.0"),
    (["--dataset", "digits", "--label-smoothing", "1"], 2, "--label-smoothing must be below 1.0, not 1.0"),
    (["--dataset", "digits", "--dropout", "1"], 2, "--dropout must be below 1.0"),
    (["--dataset", "digits", "--lr", "nan"], 2, "--lr must be a finite number, not nan"),
    (["--dataset", "digits", "--weight-decay", "inf"], 2, "--weight-decay must be a finite number"),
    (["--dataset", "digits", "--epochs", "x"], 2, "argument --epochs: invalid int value: 'x'"),
    (["--dataset", "digits", "--normalize", "nope"], 2, "argument --normalize: invalid choice: 'nope'"),
    (["--dataset", "digits", "--low-res-epochs", "2", "--low-res-size", "16"], 1,
     "--low-res-size 16 is larger than the image size 8"),
    (["--dataset", "digits", "--patch-size", "3"], 1, "not divisible by patch size 3"),
    (["--dataset", "digits", "--patch-size", "3", "--low-res-epochs", "1", "--low-res-size", "6"],
     1, "image size 8 is not divisible by the patch size 3, which the epochs after"),
    (["--dataset", "digits", "--threads", "-1"], 2, "--threads must be at least 0, not -1"),
    (["--dataset", "digits", "--seed", "-1"], 2, "--seed must be at least 0, not -1"),
    (["--dataset", "digits", "--validation", "0.9999"], 1, "leaving none to train on: use a smaller --validation"),
    (["--dataset", "digits", "--model", "Z/3"], 1, "unknown config 'Z/3'"),
    (["--preset", "finetune", "--dataset", "digits", "--model", "custom", "--dim", "16"], 1,
     "--model custom needs --depth, --heads, --mlp-dim, --patch-size"),
    (["--dataset", "mnist"], 1, "unknown data set 'mnist'"),
    (["--dataset", "cifar10:/no/such/file.tar.gz"], 1, "no CIFAR-10 archive at /no/such/file.tar.gz"),
    (["--dataset", "folder:/no/such/folder"], 1, "no folder /no/such/folder"),
    (["--dataset", "cifar10", "--data-dir", "{fx}/notes.txt"], 1,
     "the data directory {fx}/notes.txt is a file"),
    (["--dataset", "cifar10:{fx}/corrupt.tar.gz"], 1, "{fx}/corrupt.tar.gz is truncated or corrupt"),
    (["--dataset", "cifar10:{fx}/link.tar.gz"], 1, "'cifar-10-batches-py/data_batch_1' is a link"),
    (["--dataset", "cifar10:{fx}/junk.tar.gz"], 1,
     "{fx}/junk.tar.gz: cifar-10-batches-py/data_batch_1 is not a readable CIFAR pickle"),
    (["--dataset", "cifar10:{fx}/malicious.tar.gz"], 1,
     "{fx}/malicious.tar.gz: refusing to unpickle posix.system from cifar-10-batches-py/data_batch_1"),
    (["--dataset", "folder:{fx}/folder_junk", "--image-size", "8", *TINY_FLAGS], 1,
     "cannot read the image {fx}/folder_junk/train/a/x.png"),
    (["--dataset", "folder:{fx}/folder_bomb", "--image-size", "8", *TINY_FLAGS], 1,
     "cannot read the image {fx}/folder_bomb/train/a/x.png (Image size (400000000 pixels)"),
    (["--dataset", "digits", "--out", "{fx}/notes.txt"], 1,
     "cannot write the run directory {fx}/notes.txt/"),
    (["--dataset", "digits", "--out", "{fx}", "--name", "run"], 1, "{fx}/run already holds a run"),
    (["--resume", "no/such/run"], 1, "nothing to resume in 'no/such/run'"),
    (["--resume", "{fx}/empty"], 1, "nothing to resume in '{fx}/empty': no last.npz"),
    (["--resume", "{fx}/not_zip"], 1, "{fx}/not_zip/last.npz is not a readable .npz checkpoint"),
    (["--resume", "{fx}/weights"], 1, "{fx}/weights/last.npz is not a training checkpoint"),
    (["--resume", "{fx}/unknown_key"], 1, "has an option 'colour' that minivit.train does not know"),
    (["--resume", "{fx}/short_rows"], 1, "metrics is not a list of rows of numbers, each with epoch"),
    (["--resume", "{fx}/no_metrics"], 1, "metrics.csv cannot be read"),
    (["--resume", "{fx}/two_rows", "--epochs", "3"], 1, "is at epoch 1, but its record has 2 epochs"),
    (["--dataset", "cifar10:{fx}/long_name.tar"], 1, "has a member header of 314,572,800 bytes"),
    (["--resume", "{fx}/wrong_type"], 1, "option 'epochs' should be an int, not 'many'"),
    (["--resume", "{fx}/zero_batch"], 1, "option 'batch_size' must be at least 1, not 0"),
    (["--resume", "{fx}/unknown_optimizer"], 1, "option 'optimizer' must be one of adamw, sgd"),
    (["--resume", "{fx}/no_pos_embed"], 1, "no tensor 'pos_embed'"),
    (["--resume", "{fx}/bad_model_config"], 1, "model_config cannot build a ViT"),
    (["--resume", "{fx}/run", "--epochs", "0"], 2, "--epochs must be at least 1"),
    (["--dataset", "digits", "--stem", "x"], 2, "--stem must be the channels of each stem stage, "
     "positive integers separated by commas (e.g. 32,64), not 'x'"),
    (["--dataset", "digits", "--stem", "0,64"], 2, "positive integers separated by commas (e.g. "
     "32,64), not '0,64'"),
    (["--dataset", "digits", "--stem", ""], 2, "--stem must be the channels of each stem stage"),
    (["--dataset", "digits", "--stem", "32,,64"], 2, "separated by commas (e.g. 32,64), not '32,,64'"),
    (["--dataset", "digits", "--stem", "1.5"], 2, "positive integers"),
    (["--dataset", "digits", "--stem", "12"], 2,
     "--stem must be channels that GroupNorm's 8 groups split evenly (multiples of 8, or below 8)"),
    (["--dataset", "digits", "--stem-depth", "0"], 2, "--stem-depth must be at least 1, not 0"),
    (["--dataset", "digits", "--stem-depth", "2"], 1, "--stem-depth 2 needs --stem"),
    (["--dataset", "digits", "--stem", "16", "--patch-size", "2"], 1,
     "--patch-size and --stem cannot be given together: the stem sets the patch size"),
    (["--dataset", "digits", "--stem", "8,16,32,64"], 1,
     "image size 8 is not divisible by the stem's stride 16"),
    (["--dataset", "digits", "--stem", "16", "--init", "{fx}/run/last.npz"], 1,
     "--init and --stem cannot be given together"),
    (["--preset", "finetune", "--dataset", "digits", "--model", "custom", "--stem", "16", "--dim",
      "16"], 1, "--model custom needs --depth, --heads, --mlp-dim (or a named --model)"),
    (["--resume", "{fx}/bad_stem_widths"], 1, "model_config cannot build a ViT (stem_widths must "
     "be a list of positive integers, not 'os.system')"),
    (["--resume", "{fx}/bad_stem_option"], 1, "option 'stem' must be the channels of each stem "
     "stage, positive integers separated by commas (e.g. 32,64), not '0,64'"),
]
GPU = [  # only where CuPy cannot be used
    ("train", ["--dataset", "digits", "--device", "gpu"], 1, "device 'gpu' needs"),
    ("bench", ["--device", "gpu"], 1, "device 'gpu' needs"),
]
CASES = [("train", args, code, culprit) for args, code, culprit in TRAIN] + [
    ("evaluate", ["/no/such/best.npz"], 1, "no checkpoint at /no/such/best.npz"),
    ("evaluate", ["{fx}/notes.txt"], 1, "{fx}/notes.txt is not a readable .npz checkpoint"),
    ("evaluate", ["{fx}/pickled.npz"], 1,
     "{fx}/pickled.npz is not a readable .npz checkpoint (it holds a pickled object"),
    ("evaluate", ["{fx}/huge_shape.npz"], 1, "array 'a' declares shape (100000, 100000)"),
    ("evaluate", ["{fx}/deflate_bomb.npz"], 1, "its members would expand to 67,108,992 bytes in all"),
    ("evaluate", ["{fx}/bad_deflate.npz"], 1, "{fx}/bad_deflate.npz is not a readable .npz checkpoint"),
    ("evaluate", ["{fx}/many_members.npz"], 1, "its members would expand to 41,943,040 bytes in all"),
    ("evaluate", ["{fx}/overflow_shape.npz"], 1, "array 'a' declares shape"),
    ("evaluate", ["{fx}/no_dataset/last.npz"], 1, "(no 'dataset' in its config)"),
    ("evaluate", ["{fx}/run/last.npz", "--dataset", "folder:{fx}/folder_rgb"], 1,
     "has 3-channel images, but the model takes 1-channel ones"),
    ("inspect", ["{fx}/run/last.npz", "--out", "{fx}/a_file"], 1, "cannot make the folder --out {fx}/a_file"),
    ("finetune", ["{fx}/no_num_classes/last.npz", "--dataset", "digits"], 1, "(no 'num_classes' in its config)"),
    ("evaluate", ["{fx}/weights/last.npz"], 1, "{fx}/weights/last.npz is not a training checkpoint"),
    ("evaluate", ["{fx}/bad_model_config/last.npz"], 1, "model_config cannot build a ViT"),
    ("evaluate", ["{fx}/bad_stem_widths/last.npz"], 1, "stem_widths must be a list of positive"),
    ("evaluate", ["{fx}/run/last.npz", "--dataset", "cifar10:missing"], 1, "no CIFAR-10 archive at missing"),
    ("evaluate", [], 2, "the following arguments are required: checkpoint"),
    ("inspect", ["{fx}/run/last.npz", "--out", "figures", "--images", "0"], 2,
     "--images must be at least 1, not 0"),
    ("inspect", ["{fx}/run/last.npz", "--out", "figures", "--show", "-1"], 2, "--show must be at least 1"),
    ("inspect", ["{fx}/run/last.npz", "--out", "figures", "--dataset", "cifar10:missing"], 1,
     "no CIFAR-10 archive at missing"),
    ("inspect", ["{fx}/notes.txt", "--out", "figures"], 1, "{fx}/notes.txt is not a readable .npz"),
    ("finetune", ["/no/such/best.npz", "--dataset", "digits"], 1, "no checkpoint at /no/such/best.npz"),
    ("finetune", ["{fx}/notes.txt", "--dataset", "digits"], 1, "cannot tell the layout of {fx}/notes.txt"),
    ("finetune", ["{fx}/long_header.safetensors", "--dataset", "digits"], 1,
     "{fx}/long_header.safetensors is truncated or not a .safetensors file"),
    ("finetune", ["{fx}/cut_short.safetensors", "--dataset", "digits"], 1,
     "{fx}/cut_short.safetensors is truncated or corrupt: tensor 'w' needs bytes 0..4000000"),
    ("finetune", ["{fx}/bad_model_config/last.npz", "--dataset", "digits"], 1,
     "--init {fx}/bad_model_config/last.npz: its model_config cannot build a ViT"),
    ("finetune", ["{fx}/run/last.npz", "--dataset", "digits", "--dim", "32"], 1,
     "--dim 32 does not match the --init checkpoint's 16"),
    ("bench", ["--model", "Z"], 1, "unknown model 'Z'"),
    ("bench", ["--threads", "0"], 2, "--threads must be 1 or more, not 0"),
    ("bench", ["--batch-size", "0"], 2, "--batch-size must be 1 or more"),
    ("bench", ["--image-size", "30", "--no-torch"], 1, "image size 30 is not divisible by patch size 4"),
] + [pytest.param(*case, marks=pytest.mark.skipif(minivit.gpu_available(),
                                                 reason="this machine can use CuPy"))
     for case in GPU]


def case_id(case):
    tool, args = (case.values if hasattr(case, "values") else case)[:2]
    return f"{tool} {' '.join(args)}".replace("{fx}/", "").replace("{fx}", "FX")


@pytest.mark.parametrize("tool, args, code, culprit", CASES, ids=[case_id(c) for c in CASES])
def test_bad_input_ends_in_one_line_and_leaves_nothing(fx, fx_snapshot, tmp_path, tool, args,
                                                       code, culprit):
    result = cli(tool, *(a.format(fx=fx) for a in args), cwd=tmp_path)
    assert_one_line_error(result, tool, code, culprit.format(fx=fx))
    assert left_behind(tmp_path) == []  # no run directory, checkpoint, cache or figure
    assert snapshot(fx) == fx_snapshot  # nothing it read was changed (or written by a pickle)


def test_a_read_only_out_folder(fx, tmp_path):
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(read_only, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable anyway")
        result = cli("train", "--dataset", "digits", "--out", str(read_only), cwd=tmp_path)
        assert_one_line_error(result, "train", 1, f"cannot write the run directory {read_only}/")
        assert os.listdir(read_only) == []
    finally:
        read_only.chmod(stat.S_IRWXU)


# --- run directories -----------------------------------------------------------------------------

def metrics_rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_a_run_directory_is_replaced_only_with_overwrite_and_only_by_a_run_that_starts(fx, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fx / "run", run)
    before = snapshot(run)
    flags = ["--dataset", "digits", *TINY_FLAGS, "--out", str(tmp_path), "--name", "run"]
    refused = cli("train", *flags, "--epochs", "2", cwd=tmp_path)
    assert_one_line_error(refused, "train", 1, f"{run} already holds a run")
    # --overwrite with a mistake in it is refused before anything of the old run is deleted
    refused = cli("train", *flags, "--epochs", "2", "--overwrite", "--patch-size", "3", cwd=tmp_path)
    assert_one_line_error(refused, "train", 1, "not divisible by patch size 3")
    assert snapshot(run) == before
    replaced = cli("train", *flags, "--epochs", "2", "--overwrite", cwd=tmp_path)
    assert replaced.returncode == 0 and replaced.stderr == "", replaced.stderr
    assert [row["epoch"] for row in metrics_rows(run)] == ["1", "2"]
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    assert int(load_arrays(run / "last.npz")["epoch"]) == 2


def test_a_second_run_into_a_directory_being_trained_into_is_refused(tmp_path):
    """The first run holds the run directory's lock while it trains; a second one, with
    --overwrite or without, is told so in one line and deletes nothing."""
    flags = ["--dataset", "digits", *TINY_FLAGS, "--threads", "1", "--out", str(tmp_path),
             "--name", "run"]
    first = subprocess.Popen([sys.executable, "-m", "minivit.train", *flags, "--epochs", "100000"],
                             cwd=tmp_path, env=environment(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline, header = time.monotonic() + 60, ""
        while "| run " not in header:  # printed once the lock is held and config.json written
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first run printed no header in 60 s"
            if select.select([first.stdout], [], [], 1)[0]:
                header = first.stdout.readline()
        assert (tmp_path / "run" / ".lock").exists()
        for extra in ([], ["--overwrite"]):
            second = cli("train", *flags, *extra, cwd=tmp_path)
            assert_one_line_error(second, "train", 1,
                                  f"another minivit.train is training into {tmp_path / 'run'}")
        assert (tmp_path / "run" / "config.json").exists() and first.poll() is None
    finally:
        first.kill()
        first.wait()
        first.stdout.close()
        first.stderr.close()


def test_resume_takes_epochs_and_names_the_flags_it_ignores(fx, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fx / "run", run)
    lr = json.loads((run / "config.json").read_text())["lr"]
    result = cli("train", "--resume", str(run), "--lr", "0.5", "--epochs", "2", "--name", "other",
                 "--overwrite", "--preset", "cpu-hour", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    ignored = warnings[0].split("ignoring ")[1].split(" (")[0]
    assert ignored == "--lr, --preset, --name, --overwrite", warnings[0]  # --epochs is taken
    assert [row["epoch"] for row in metrics_rows(run)] == ["1", "2"]
    config = json.loads((run / "config.json").read_text())
    assert config["lr"] == lr and config["epochs"] == 2
    assert int(load_arrays(run / "last.npz")["epoch"]) == 2

    before = snapshot(run)
    fewer = cli("train", "--resume", str(run), "--epochs", "1", cwd=tmp_path)
    assert_one_line_error(fewer, "train", 1,
                          f"--epochs 1: the run in {run} has already trained 2 epochs")
    assert snapshot(run) == before


def test_running_out_of_memory_is_one_line_and_leaves_nothing(tmp_path):
    """A model far too large for the memory the process may have (an address-space limit of
    3 GB): MemoryError becomes one line, and the run directory it had begun is gone."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    result = subprocess.run([sys.executable, "-m", "minivit.train", "--dataset", "digits",
                             "--image-size", "100000", "--patch-size", "4"], cwd=tmp_path,
                            env=environment(), capture_output=True, text=True, timeout=120,
                            preexec_fn=limit)
    assert_one_line_error(result, "train", 1, "out of memory: try a smaller --batch-size")
    assert left_behind(tmp_path) == []
