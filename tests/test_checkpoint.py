"""Weights on disk: .npz round trip without pickle, atomic writes, clear errors on mismatch."""
import numpy as np
import pytest

import minivit
from minivit import CheckpointError, ViT
from minivit.checkpoint import load_arrays, save_arrays


def test_round_trip_restores_every_parameter(tmp_path):
    model = ViT.from_config("C-micro/4", num_classes=3)
    minivit.save(model, tmp_path / "w.npz")
    minivit.manual_seed(1)
    other = minivit.load(ViT.from_config("C-micro/4", num_classes=3), tmp_path / "w.npz")
    for (name, a), (_, b) in zip(model.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


def test_a_checkpoint_that_does_not_fit_names_the_tensor_and_both_shapes(tmp_path):
    minivit.save(ViT.from_config("C-micro/4", num_classes=3), tmp_path / "w.npz")
    with pytest.raises(CheckpointError, match=r"tensor 'head.weight' has shape \(64, 3\) in the "
                                              r"checkpoint but \(64, 10\) in the model"):
        minivit.load(ViT.from_config("C-micro/4", num_classes=10), tmp_path / "w.npz")
    with pytest.raises(CheckpointError, match="has no tensor 'blocks.2.norm1.weight'"):
        minivit.load(ViT.from_config("C-micro/4", num_classes=3, depth=3), tmp_path / "w.npz")
    with pytest.raises(CheckpointError, match="has a tensor 'blocks.1.norm1.weight' that the model"):
        minivit.load(ViT.from_config("C-micro/4", num_classes=3, depth=1), tmp_path / "w.npz")


def test_pickled_objects_are_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", payload=np.array([object()], dtype=object))
    with pytest.raises(CheckpointError, match="not a readable .npz checkpoint"):
        load_arrays(tmp_path / "evil.npz")


def test_corrupt_and_missing_files_give_clear_errors(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        load_arrays(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_arrays(tmp_path / "missing.npz")


def test_writes_are_atomic(tmp_path, monkeypatch):
    """A crash mid-write leaves the previous checkpoint intact and no temporary file."""
    path = tmp_path / "w.npz"
    save_arrays(path, {"a": np.ones(2)})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_arrays(path, {"a": np.zeros(2)})
    np.testing.assert_array_equal(load_arrays(path)["a"], np.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]
