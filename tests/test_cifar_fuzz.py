"""The CIFAR unpickler (minivit/data/unpickle.py) against real, hostile and mutated pickles: it must
return what pickle.load does for a CIFAR pickle, and for anything else a DataError, never another
exception, a crash or a huge allocation.

Hostile and mutated pickles are read in a child process (this file, run as a script) whose address
space is capped at 1.5 GiB: a segfault shows in its exit code and an unbounded allocation as a
MemoryError, and either fails the test instead of killing pytest.
"""
import itertools
import json
import os
import pickle
import pickletools
import random
import re
import struct
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np

from minivit.data import cifar
from minivit.errors import DataError
from minivit.data.unpickle import MAX_DEPTH, MAX_OBJECTS, load_pickle

ROOT = Path(__file__).resolve().parents[1]
MEMORY_CAP = 3 << 29  # 1.5 GiB
FUZZ_INPUTS = 50_000  # about 10 s
CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship",
           b"truck"]


# --- CIFAR pickles, as Python 2 wrote them and as Python 3 copies them --------------------------

def python2_pickle(obj):
    """`obj` (a dict of bytes keys: bytes, ints, lists of them, 2-D uint8 arrays) as Python 2's
    cPickle wrote the official CIFAR files: protocol 2, strings as BINSTRING, each string, list,
    dict and array stored in the memo, arrays through numpy.core.multiarray._reconstruct."""
    memo = itertools.count()

    def put():
        index = next(memo)
        return b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index)

    def string(value):
        if len(value) < 256:
            return b"U" + bytes([len(value)]) + value
        return b"T" + struct.pack("<i", len(value)) + value

    def integer(value):
        if 0 <= value < 256:
            return b"K" + bytes([value])
        if 0 <= value < 65536:
            return b"M" + struct.pack("<H", value)
        return b"J" + struct.pack("<i", value)

    def save(value):
        if isinstance(value, bytes):
            return string(value) + put()
        if isinstance(value, int):
            return integer(value)
        if isinstance(value, list):
            return b"]" + put() + b"(" + b"".join(map(save, value)) + b"e"
        if isinstance(value, dict):
            return (b"}" + put() + b"(" + b"".join(save(key) + save(item)
                                                   for key, item in value.items()) + b"u")
        rows, columns = value.shape
        return (b"cnumpy.core.multiarray\n_reconstruct\n" + put() + b"cnumpy\nndarray\n" + put()
                + b"K\x00\x85" + string(b"b") + put() + b"\x87R" + put()
                + b"(K\x01" + integer(rows) + integer(columns) + b"\x86"
                + b"cnumpy\ndtype\n" + put() + string(b"u1") + put() + b"K\x00K\x01\x87R" + put()
                + b"(K\x03" + string(b"|") + put()
                + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
                + b"\x89" + string(value.tobytes()) + put() + b"tb")

    return b"\x80\x02" + save(obj) + b"."


def batch(images=2, seed=0):
    """A CIFAR-10 batch of `images` random images, as pickle.load(encoding="bytes") gives it."""
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"training batch 1 of 5",
            b"labels": [int(label) for label in rng.integers(0, 10, images)],
            b"data": rng.integers(0, 256, (images, 3072), dtype=np.uint8),
            b"filenames": [b"image_%05d.png" % i for i in range(images)]}


def meta():
    return {b"label_names": CLASSES, b"num_cases_per_batch": 10000, b"num_vis": 3072}


def cifar_pickles():
    """{name: pickle}: a batch and a meta file as Python 2 wrote them, and as Python 3 copies
    them with protocols 2 to 5, loaded with encoding="bytes" (bytes keys) or "latin1" (str)."""
    originals = {"batch": python2_pickle(batch()), "meta": python2_pickle(meta())}
    copies = {f"{name}, python 3 protocol {protocol}, {encoding} keys":
              pickle.dumps(pickle.loads(blob, encoding=encoding), protocol=protocol)
              for name, blob in originals.items() for protocol in range(2, 6)
              for encoding in ("bytes", "latin1")}
    return {**{f"{name}, python 2": blob for name, blob in originals.items()}, **copies}


def same(got, expected):
    """Whether the decoded `got` is `expected`, type for type (arrays: uint8, equal, writeable)."""
    if isinstance(expected, np.ndarray):
        return (isinstance(got, np.ndarray) and got.dtype == expected.dtype == np.uint8
                and got.shape == expected.shape and (got == expected).all()
                and got.flags.writeable)
    if isinstance(expected, dict):
        return (type(got) is dict and list(got) == list(expected)
                and all(same(got[key], expected[key]) for key in expected))
    if isinstance(expected, list):
        return (type(got) is list and len(got) == len(expected)
                and all(map(same, got, expected)))
    return type(got) is type(expected) and got == expected


# --- in-process tests ---------------------------------------------------------------------------

def test_the_decoder_returns_what_pickle_load_does_for_every_kind_of_cifar_pickle(tmp_path):
    for name, blob in cifar_pickles().items():
        path = tmp_path / "pickle"
        path.write_bytes(blob)
        expected = pickle.loads(blob, encoding="bytes")
        # a Python 3 copy's str keys come back as bytes, so that cifar.py finds b"data"
        expected = {key.encode() if isinstance(key, str) else key: value
                    for key, value in expected.items()}
        assert same(load_pickle(path), expected), name


def test_the_python_2_writer_here_writes_what_pickle_reads():
    assert same(pickle.loads(python2_pickle(batch()), encoding="bytes"), batch())


def test_a_cifar_batch_in_every_protocol_reads_as_images_and_labels(tmp_path):
    spec = cifar.ARCHIVES["cifar10"]
    expected = batch()
    for name, blob in cifar_pickles().items():
        if name.startswith("batch"):
            path = tmp_path / "data_batch_1"
            path.write_bytes(blob)
            images, labels = cifar.read_batches(spec, [path])
            assert (images == expected[b"data"].reshape(-1, 3, 32, 32)).all(), name
            assert labels.tolist() == expected[b"labels"], name


# --- hostile pickles, read in a capped child process --------------------------------------------

def hostile_pickles(marker):
    """{name: (pickle, what the DataError must say)}. `marker`: a file that a pickle running a
    shell command would create."""
    valid, command = python2_pickle(batch()), f"touch {marker}".encode()
    # {"0000": _frombuffer(<1 MiB>, uint8, (1024, 1024), "C"), "0001": the same from the memo, ...}
    first_array = (b"\x8c\x13numpy._core.numeric\x8c\x0b_frombuffer\x93\x94("          # memo 0
                   + b"\x96" + struct.pack("<Q", 1 << 20) + bytes(1 << 20) + b"\x94"  # memo 1
                   + b"\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02u1\x89\x88\x87R"
                   + b"(K\x03\x8c\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x94"  # memo 2
                   + b"M\x00\x04M\x00\x04\x86\x94\x8c\x01C\x94tR")                     # memo 3, 4
    one_mib_arrays = b"".join(b"\x8c\x04%04d" % i + (first_array if i == 0 else
                                                     b"h\x00(h\x01h\x02h\x03h\x04tR") + b"s"
                              for i in range(2000))
    return {
        "a memo index of 2**32-1": (b"\x80\x02}r\xff\xff\xff\xffj\xff\xff\xff\xff.",
                                    "objects on the stack"),
        "a 12-byte bytearray of 2**64-1 bytes": (b"\x80\x05\x96" + b"\xff" * 8 + b".",
                                                 "bytes needed where 1 remain"),
        "a 4 GiB BINBYTES": (b"\x80\x03}B\xff\xff\xff\xff", "bytes needed"),
        "a negative BINSTRING length": (b"\x80\x02T\xff\xff\xff\xff.",
                                        r"a negative length \(-1\)"),
        "a 2**64-1 byte frame": (b"\x80\x04\x95" + b"\xff" * 8 + b"}.", "a frame of"),
        "os.system by GLOBAL and REDUCE": (
            b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(command)) + command + b"\x85R.",
            r"refusing to unpickle os\.system"),
        "posix.system by STACK_GLOBAL": (b"\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c\x04true"
                                         b"\x85R.", r"refusing to unpickle posix\.system"),
        "builtins.eval": (b"\x80\x02c__builtin__\neval\n.",
                          r"refusing to unpickle __builtin__\.eval"),
        "a shape larger than the bytes": (valid.replace(b"K\x02M\x00\x0c\x86",
                                                        b"J\xff\xff\xff\x7fM\x00\x0c\x86"),
                                          r"shape \(2147483647, 3072\) in 6,144 bytes"),
        "a float64 dtype": (valid.replace(b"U\x02u1", b"U\x03<f8"), "dtype <f8"),
        "an object dtype": (valid.replace(b"U\x02u1", b"U\x02O8"), "dtype O8"),
        "a big-endian dtype state": (valid.replace(b"U\x01|", b"U\x01>"), "not uint8's"),
        "a Fortran-order array": (valid.replace(b"\x89T", b"\x88T"), "state is not"),
        "deep MARK nesting": (b"\x80\x02" + b"(" * 100_000 + b".", f"more than {MAX_DEPTH} deep"),
        "a memo of millions": (b"\x80\x04N" + b"\x94" * (MAX_OBJECTS + 1) + b".",
                               f"more than {MAX_OBJECTS:,} objects"),
        "one buffer made into 2,000 arrays of 1 MiB": (
            b"\x80\x05}" + one_mib_arrays + b".", "larger than the file"),
        "a list holding itself": (b"\x80\x02]q\x00h\x00a.", "a list holding a list"),
        "a tuple at the top": (b"\x80\x02K\x01\x85.", "a pickle of a tuple"),
        "a BUILD of a dict": (b"\x80\x02}}b.", "BUILD of a dict"),
        "an unknown opcode (INST)": (b"\x80\x02iposix\nsystem\n.", r"opcode b'i'"),
        "a truncated batch": (valid[:len(valid) // 3], "bytes needed"),
        "bytes after STOP": (valid + b"N", r"bytes after STOP \(1\)"),
    }


def test_hostile_pickles_are_refused_without_running_or_allocating(tmp_path):
    marker = tmp_path / "it-ran"
    report = run_child("hostile", tmp_path)
    assert report["capped"] or sys.platform != "linux"
    for name, (_, message) in hostile_pickles(marker).items():
        assert re.search(message, report["errors"][name]), (name, report["errors"][name])
    assert not marker.exists()


def test_thousands_of_mutated_pickles_give_a_data_error_or_a_good_batch(tmp_path):
    report = run_child("fuzz", tmp_path)
    assert report["failures"] == [], "\n\n".join(report["failures"])
    assert report["inputs"] == FUZZ_INPUTS
    assert report["refused"] > FUZZ_INPUTS // 2  # most changes break the pickle,
    assert report["read"] > FUZZ_INPUTS // 100 and report["batch"] > FUZZ_INPUTS // 100  # not all


def run_child(what, tmp_path):
    """Run this file as a script in a capped child process; its report (JSON)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, __file__, what, str(tmp_path)], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, f"the child died ({child.returncode}):\n{child.stderr[-3000:]}"
    return json.loads(child.stdout.splitlines()[-1])


# --- the child ----------------------------------------------------------------------------------

def cap_memory():
    """Make an allocation past MEMORY_CAP a MemoryError in this process (Linux only); whether
    the cap holds."""
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
        bytearray(MEMORY_CAP)
    except MemoryError:
        return True
    except (ImportError, ValueError, OSError):
        pass
    return False


def read(path, is_batch):
    """Read `path` as the loader does, checking what comes out: "refused" (a DataError), "read"
    (a dict), or for a batch "batch" (images and labels from read_batches)."""
    try:
        content = load_pickle(path)
    except DataError:
        return "refused"
    assert type(content) is dict
    for key, value in content.items():
        assert type(key) is bytes
        if isinstance(value, np.ndarray):
            assert value.dtype == np.uint8 and value.flags.writeable and value.base is None
        elif isinstance(value, list):
            assert all(isinstance(item, (int, bytes, str)) for item in value)
        else:
            assert isinstance(value, (bytes, str, int))
    if not is_batch:
        return "read"
    try:
        images, labels = cifar.read_batches(cifar.ARCHIVES["cifar10"], [path])
    except DataError:
        return "read"
    assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
    assert labels.dtype == np.int64 and labels.shape == (len(images),)
    return "batch"


def mutate(blob, rng, structure, arguments):
    """`blob` with one to three random changes: a bit flipped, a byte overwritten or set to an
    opcode, bytes inserted, deleted or duplicated, a cut, or a length or memo index made huge.
    `structure`: the offsets outside the pixel data, where most changes go; `arguments`: the
    (offset, size) of each length and memo index."""
    blob = bytearray(blob)
    for _ in range(rng.randint(1, 3)):
        at = rng.choice(structure) if rng.random() < 0.9 else rng.randrange(len(blob))
        at = min(at, len(blob) - 1)
        change = rng.randrange(8)
        if change == 0:
            blob[at] ^= 1 << rng.randrange(8)
        elif change == 1:
            blob[at] = rng.randrange(256)
        elif change == 2:
            blob[at] = rng.choice(b"()*.0123FGIJKLMNPQRSTUVXabcdeghijklmopqrstu}]\x80\x81\x82\x83"
                                  b"\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92"
                                  b"\x93\x94\x95\x96\x97\x98")
        elif change == 3:
            blob[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif change == 4:
            del blob[at:at + rng.randint(1, 16)]
        elif change == 5:
            start = rng.randrange(len(blob))
            blob[at:at] = blob[start:start + rng.randint(1, 64)]
        elif change == 6:
            del blob[at:]
        else:
            offset, size = rng.choice(arguments)
            blob[offset:offset + size] = rng.choice([b"\xff", b"\x7f", b"\x80"]) * size
        if not blob:
            break
    return bytes(blob)


def anatomy(blob):
    """The offsets of `blob` outside its longest string (the pixels), and the (offset, size) of
    each argument that is a length or a memo index."""
    ops = list(pickletools.genops(blob))
    sizes = {"U": 1, "C": 1, "\x8c": 1, "T": 4, "B": 4, "X": 4, "\x96": 8, "\x95": 8, "q": 1,
             "h": 1, "r": 4, "j": 4}
    arguments = [(at + 1, sizes[op.code]) for op, _, at in ops if op.code in sizes]
    spans = [(len(arg) if isinstance(arg, (bytes, str, bytearray)) else 0, at, end)
             for (_, arg, at), (_, _, end) in zip(ops, ops[1:])]
    _, start, end = max(spans)
    return [at for at in range(len(blob)) if not start <= at < end], arguments


def fuzz(folder):
    rng, seeds = random.Random(12), cifar_pickles()
    anatomies = {name: anatomy(blob) for name, blob in seeds.items()}
    path, counts, failures = folder / "data_batch_1", {"refused": 0, "read": 0, "batch": 0}, []
    for i in range(FUZZ_INPUTS):
        name = rng.choice(list(seeds))
        blob = mutate(seeds[name], rng, *anatomies[name])
        path.write_bytes(blob)
        try:
            counts[read(path, name.startswith("batch"))] += 1
        except Exception:  # anything but a DataError: what the fuzzing looks for
            if len(failures) < 5:
                failures.append(f"input {i} (from {name}): {blob!r}\n{traceback.format_exc()}")
    return {"inputs": FUZZ_INPUTS, **counts, "failures": failures}


def hostile(folder):
    errors = {}
    for name, (blob, _) in hostile_pickles(folder / "it-ran").items():
        path = folder / "data_batch_1"
        path.write_bytes(blob)
        try:
            cifar.read_batches(cifar.ARCHIVES["cifar10"], [path])
            errors[name] = "no error"
        except DataError as error:
            errors[name] = str(error)
        except Exception as error:  # reported, to fail the test with the pickle's name
            errors[name] = f"{type(error).__name__}: {error}"
    return {"errors": errors}


if __name__ == "__main__":
    what, folder = sys.argv[1], Path(sys.argv[2])
    capped = cap_memory()
    report = fuzz(folder) if what == "fuzz" else hostile(folder)
    print(json.dumps({"capped": capped, **report}))
