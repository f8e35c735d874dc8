"""Pretrained weights: the official .npz layout and timm's .safetensors, into minivit and back.

A round trip alone would pass for a mapping that is wrong both ways, so each layout is also read
by an independent forward pass written in that layout's own terms: the official one in NumPy
(strided convolution, (D H Dh) attention kernels, tanh GELU), timm's in torch (Conv2d, (3D D) qkv,
exact GELU) and, where it is installed, timm itself.
"""
import json

import numpy as np
import pytest

import minivit
from minivit import CheckpointError
from minivit.model import resize_pos_embed
from minivit.pretrained import (from_pretrained, minivit_to_timm, official_to_minivit,
                                save_pretrained)
from minivit.safetensors import (bfloat16_to_float32, read_safetensors, safetensors_metadata,
                                 write_safetensors)

# A tiny ViT: 16 px images, 4 px patches (a 4 x 4 grid), width 16, 2 heads of 8, 2 blocks, 5 classes
SIZE, P, C, D, H, M, DEPTH, K = 16, 4, 3, 16, 2, 32, 2, 5
G = SIZE // P
RTOL, ATOL = 1e-10, 1e-12   # float64: the same function computed two ways


def assert_close(actual, expected, what, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


# --- the official layout, built by hand from the shapes in the paper's code ----------------------

def official_checkpoint(rng, naming="vit_jax", pool="cls", dtype=np.float64, head=True):
    """Random weights under the official key names. naming='big_vision' uses the newer names:
    a 'params/' prefix, MultiHeadDotProductAttention_0, LayerNorm_1, MlpBlock_0, and a top-level
    `pos_embedding` without the class position."""
    big_vision = naming == "big_vision"
    attn, norm2, mlp = (("MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0")
                        if big_vision else
                        ("MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3"))
    pos_key = "pos_embedding" if big_vision else "Transformer/posembed_input/pos_embedding"
    tokens = G * G + (pool == "cls" and not big_vision)
    shapes = {"embedding/kernel": (P, P, C, D), "embedding/bias": (D,), pos_key: (1, tokens, D),
              "Transformer/encoder_norm/scale": (D,), "Transformer/encoder_norm/bias": (D,)}
    if pool == "cls":
        shapes["cls"] = (1, 1, D)
    if head:
        shapes.update({"head/kernel": (D, K), "head/bias": (K,)})
    for i in range(DEPTH):
        block = f"Transformer/encoderblock_{i}/"
        for norm in ("LayerNorm_0", norm2):
            shapes.update({f"{block}{norm}/scale": (D,), f"{block}{norm}/bias": (D,)})
        for x in ("query", "key", "value"):
            shapes.update({f"{block}{attn}/{x}/kernel": (D, H, D // H),
                           f"{block}{attn}/{x}/bias": (H, D // H)})
        shapes.update({f"{block}{attn}/out/kernel": (H, D // H, D), f"{block}{attn}/out/bias": (D,),
                       f"{block}{mlp}/Dense_0/kernel": (D, M), f"{block}{mlp}/Dense_0/bias": (M,),
                       f"{block}{mlp}/Dense_1/kernel": (M, D), f"{block}{mlp}/Dense_1/bias": (D,)})
    arrays = {key: (rng.standard_normal(shape) * 0.3 + key.endswith("/scale")).astype(dtype)
              for key, shape in shapes.items()}
    return {"params/" + key: a for key, a in arrays.items()} if big_vision else arrays


def layernorm(x, scale, bias, eps=1e-6):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * scale + bias


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def official_forward(arrays, images, naming="vit_jax"):
    """The official ViT on the official tensors as stored.  images (B C H W) -> logits (B K)."""
    big_vision = naming == "big_vision"
    if big_vision:
        arrays = {key.removeprefix("params/"): a for key, a in arrays.items()}
    attn, norm2, mlp = (("MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0")
                        if big_vision else
                        ("MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3"))
    w = arrays.__getitem__
    B = len(images)
    # the strided P x P convolution: out[b, i, j] = sum over (p1 p2 c) of pixel * kernel
    pixels = images.reshape(B, C, G, P, G, P)                          # b c i p1 j p2
    x = np.einsum("bcipjq,pqcd->bijd", pixels, w("embedding/kernel")) + w("embedding/bias")
    x = x.reshape(B, G * G, D)
    if big_vision:                                # positions first, then the class token
        x = x + w("pos_embedding")
    if "cls" in arrays:
        x = np.concatenate([np.broadcast_to(w("cls"), (B, 1, D)), x], axis=1)
    if not big_vision:
        x = x + w("Transformer/posembed_input/pos_embedding")
    for i in range(DEPTH):
        block = f"Transformer/encoderblock_{i}/"
        a = block + attn + "/"
        y = layernorm(x, w(block + "LayerNorm_0/scale"), w(block + "LayerNorm_0/bias"))
        q, k, v = (np.einsum("bnd,dhe->bhne", y, w(f"{a}{t}/kernel")) + w(f"{a}{t}/bias")[:, None]
                   for t in ("query", "key", "value"))                 # b h n dh each
        probs = softmax(np.einsum("bhne,bhme->bhnm", q, k) / np.sqrt(D // H))
        out = np.einsum("bhnm,bhme->bhne", probs, v)
        x = x + np.einsum("bhne,hed->bnd", out, w(a + "out/kernel")) + w(a + "out/bias")
        y = layernorm(x, w(f"{block}{norm2}/scale"), w(f"{block}{norm2}/bias"))
        hidden = gelu_tanh(y @ w(f"{block}{mlp}/Dense_0/kernel") + w(f"{block}{mlp}/Dense_0/bias"))
        x = x + hidden @ w(f"{block}{mlp}/Dense_1/kernel") + w(f"{block}{mlp}/Dense_1/bias")
    x = layernorm(x, w("Transformer/encoder_norm/scale"), w("Transformer/encoder_norm/bias"))
    features = x[:, 0] if "cls" in arrays else x.mean(axis=1)
    return features @ w("head/kernel") + w("head/bias")


def logits_of(model, images):
    return model(minivit.Tensor(images)).numpy()


@pytest.mark.parametrize("naming, pool", [("vit_jax", "cls"), ("vit_jax", "gap"),
                                          ("big_vision", "cls")])
def test_official_checkpoint_computes_the_official_forward(naming, pool, tmp_path):
    """Loaded into minivit, the official tensors compute what the official model computes."""
    rng = np.random.default_rng(0)
    arrays = official_checkpoint(rng, naming, pool)
    np.savez(tmp_path / "vit.npz", **arrays)
    model = from_pretrained(tmp_path / "vit.npz", dtype=np.float64)
    images = rng.standard_normal((2, C, SIZE, SIZE))
    assert_close(logits_of(model, images), official_forward(arrays, images, naming), "logits")


def test_official_checkpoint_round_trips_exactly(tmp_path):
    """The architecture is read off the shapes, and writing the weights back in the official
    layout gives every key and every array again, bit for bit."""
    arrays = official_checkpoint(np.random.default_rng(0), dtype=np.float32)
    np.savez(tmp_path / "vit.npz", **arrays)
    model = from_pretrained(tmp_path / "vit.npz")
    assert model.config == dict(image_size=SIZE, patch_size=P, in_channels=C, num_classes=K,
                                dim=D, depth=DEPTH, heads=H, mlp_dim=M, dropout=0.0, pool="cls",
                                gelu="tanh", eps=1e-6)
    save_pretrained(model, tmp_path / "back.npz", layout="official")
    with np.load(tmp_path / "back.npz") as back:
        assert sorted(back.files) == sorted(arrays)
        for key, array in arrays.items():
            assert back[key].dtype == array.dtype and back[key].shape == array.shape, key
            np.testing.assert_array_equal(back[key], array, err_msg=key)


def test_a_new_head_for_fine_tuning_starts_at_zero(tmp_path):
    """num_classes different from the checkpoint's: a zero-initialised (D K) head, as in the
    paper; `pre_logits` is dropped, with a warning only while its head is kept."""
    arrays = official_checkpoint(np.random.default_rng(0), dtype=np.float32)
    arrays.update({"pre_logits/kernel": np.ones((D, D), np.float32),
                   "pre_logits/bias": np.ones(D, np.float32)})
    np.savez(tmp_path / "vit.npz", **arrays)
    with pytest.warns(UserWarning, match="pre_logits"):
        kept = from_pretrained(tmp_path / "vit.npz")
    np.testing.assert_array_equal(kept.head.weight.numpy(), arrays["head/kernel"])

    model = from_pretrained(tmp_path / "vit.npz", num_classes=10)
    assert model.head.weight.shape == (D, 10) and model.config["num_classes"] == 10
    assert not model.head.weight.numpy().any() and not model.head.bias.numpy().any()
    np.testing.assert_array_equal(model.norm.weight.numpy(),
                                  arrays["Transformer/encoder_norm/scale"])
    images = np.random.default_rng(1).standard_normal((2, C, SIZE, SIZE))
    np.testing.assert_array_equal(logits_of(model, images), np.zeros((2, 10)))


def test_a_checkpoint_without_a_head_needs_num_classes(tmp_path):
    np.savez(tmp_path / "vit.npz", **official_checkpoint(np.random.default_rng(0), head=False))
    with pytest.raises(CheckpointError, match="no classifier head: pass num_classes="):
        from_pretrained(tmp_path / "vit.npz")
    model = from_pretrained(tmp_path / "vit.npz", num_classes=3)
    assert model.head.weight.shape == (D, 3) and not model.head.weight.numpy().any()


def test_loading_at_a_higher_resolution_interpolates_the_positions(tmp_path):
    """A 16 px checkpoint loaded for 32 px images: the 4 x 4 grid of position embeddings becomes
    8 x 8 (bilinear, corners aligned, so the corner embeddings stay), the class position stays."""
    arrays = official_checkpoint(np.random.default_rng(0))
    np.savez(tmp_path / "vit.npz", **arrays)
    model = from_pretrained(tmp_path / "vit.npz", image_size=32, dtype=np.float64)
    old = arrays["Transformer/posembed_input/pos_embedding"]          # 1 1+16 D
    new = model.pos_embed.numpy()                                      # 1 1+64 D
    assert new.shape == (1, 1 + 8 * 8, D) and model.config["image_size"] == 32
    np.testing.assert_array_equal(new[:, 0], old[:, 0])
    old_grid, new_grid = old[0, 1:].reshape(G, G, D), new[0, 1:].reshape(8, 8, D)
    for (i, j), (I, J) in [((0, 0), (0, 0)), ((0, 3), (0, 7)), ((3, 0), (7, 0)), ((3, 3), (7, 7))]:
        assert_close(new_grid[I, J], old_grid[i, j], f"corner {(i, j)}")
    assert_close(new, resize_pos_embed(old, 8), "the interpolated grid")
    images = np.random.default_rng(1).standard_normal((2, C, 32, 32))
    assert logits_of(model, images).shape == (2, K)


def test_official_layout_errors_name_the_tensor(tmp_path):
    arrays = official_checkpoint(np.random.default_rng(0))
    missing = "Transformer/encoderblock_1/MlpBlock_3/Dense_1/bias"
    with pytest.raises(CheckpointError, match=f"no tensor '{missing}'"):
        official_to_minivit({k: a for k, a in arrays.items() if k != missing})
    with pytest.raises(CheckpointError, match="tensor 'Transformer/extra' that minivit's ViT"):
        official_to_minivit({**arrays, "Transformer/extra": np.zeros(1)})
    with pytest.raises(CheckpointError, match="not a ViT in the official layout"):
        official_to_minivit({"blocks.0.attn.qkv.weight": np.zeros((3 * D, D))})
    with pytest.raises(ValueError, match="cannot tell the layout"):
        from_pretrained(tmp_path / "vit.pt")


# --- timm's layout ----------------------------------------------------------------------------

def timm_checkpoint(rng):
    """Random weights under timm's names and in its (torch) layouts."""
    shapes = {"cls_token": (1, 1, D), "pos_embed": (1, 1 + G * G, D),
              "patch_embed.proj.weight": (D, C, P, P), "patch_embed.proj.bias": (D,),
              "norm.weight": (D,), "norm.bias": (D,), "head.weight": (K, D), "head.bias": (K,)}
    for i in range(DEPTH):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (D,), b + "norm1.bias": (D,),
                       b + "attn.qkv.weight": (3 * D, D), b + "attn.qkv.bias": (3 * D,),
                       b + "attn.proj.weight": (D, D), b + "attn.proj.bias": (D,),
                       b + "norm2.weight": (D,), b + "norm2.bias": (D,),
                       b + "mlp.fc1.weight": (M, D), b + "mlp.fc1.bias": (M,),
                       b + "mlp.fc2.weight": (D, M), b + "mlp.fc2.bias": (D,)})
    return {name: rng.standard_normal(shape) * 0.3 + ("norm" in name and name.endswith("weight"))
            for name, shape in shapes.items()}


def timm_forward(torch, w, images, heads):
    """timm's VisionTransformer.forward in functional torch, on a state dict with timm's names:
    Conv2d patches, class token, positions, pre-LN blocks with a fused (3D D) qkv laid out
    (3 H Dh), exact GELU, final norm, head on the class token.  (B C H W) -> (B K)."""
    F = torch.nn.functional
    x = F.conv2d(images, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=P)
    x = x.flatten(2).transpose(1, 2)                                   # B N D
    B, N = x.shape[0], x.shape[1] + 1
    x = torch.cat([w["cls_token"].expand(B, -1, -1), x], dim=1) + w["pos_embed"]
    for i in range(DEPTH):
        b = f"blocks.{i}."
        y = F.layer_norm(x, (D,), w[b + "norm1.weight"], w[b + "norm1.bias"], eps=1e-6)
        qkv = F.linear(y, w[b + "attn.qkv.weight"], w[b + "attn.qkv.bias"])
        q, k, v = qkv.reshape(B, N, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, D)
        x = x + F.linear(out, w[b + "attn.proj.weight"], w[b + "attn.proj.bias"])
        y = F.layer_norm(x, (D,), w[b + "norm2.weight"], w[b + "norm2.bias"], eps=1e-6)
        hidden = F.gelu(F.linear(y, w[b + "mlp.fc1.weight"], w[b + "mlp.fc1.bias"]))
        x = x + F.linear(hidden, w[b + "mlp.fc2.weight"], w[b + "mlp.fc2.bias"])
    x = F.layer_norm(x, (D,), w["norm.weight"], w["norm.bias"], eps=1e-6)
    return F.linear(x[:, 0], w["head.weight"], w["head.bias"])


def compare_with_torch(torch, model, torch_logits_of, images, rng, rtol=RTOL, atol=ATOL):
    """Same logits, and the same gradient of the images for a random upstream gradient."""
    x = minivit.Tensor(images, requires_grad=True)
    logits = model(x)
    x_t = torch.tensor(images, requires_grad=True)
    logits_t = torch_logits_of(x_t)
    assert_close(logits.numpy(), logits_t.detach().numpy(), "logits", rtol, atol)
    upstream = rng.standard_normal(logits.shape)
    logits.backward(upstream)
    logits_t.backward(torch.from_numpy(upstream))
    assert_close(x.grad, x_t.grad.numpy(), "gradient of the images", rtol, atol)


def test_timm_weights_compute_what_torch_computes(tmp_path):
    """timm-named weights in .safetensors (written by minivit, read without torch) give the
    logits and image gradients of a torch forward in timm's layout."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; it is the reference "
                                               "here: `pip install torch==2.13.0`")
    rng = np.random.default_rng(0)
    weights = timm_checkpoint(rng)
    write_safetensors(tmp_path / "vit.safetensors", weights)
    model = from_pretrained(tmp_path / "vit.safetensors", dtype=np.float64, heads=H)
    assert model.config["gelu"] == "erf" and model.config["image_size"] == SIZE
    assert (model.config["dim"], model.config["depth"], model.config["mlp_dim"]) == (D, DEPTH, M)
    w = {name: torch.from_numpy(a) for name, a in weights.items()}
    images = rng.standard_normal((2, C, SIZE, SIZE))
    compare_with_torch(torch, model, lambda x: timm_forward(torch, w, x, H), images, rng)


def test_timm_layout_round_trips_exactly(tmp_path):
    weights = timm_checkpoint(np.random.default_rng(0))
    write_safetensors(tmp_path / "vit.safetensors", weights)
    model = from_pretrained(tmp_path / "vit.safetensors", dtype=np.float64, heads=H)
    save_pretrained(model, tmp_path / "back.safetensors", layout="timm")
    back = read_safetensors(tmp_path / "back.safetensors")
    assert back.keys() == weights.keys()
    for name, array in weights.items():
        np.testing.assert_array_equal(back[name], array, err_msg=name)
    # the heads travel in the metadata, so the file loads again without being told
    assert safetensors_metadata(tmp_path / "back.safetensors")["num_heads"] == str(H)
    again = from_pretrained(tmp_path / "back.safetensors", dtype=np.float64)
    assert again.config == model.config


def test_timm_and_official_layouts_agree(tmp_path):
    """The same weights through both layouts: official -> minivit -> timm -> minivit -> official
    changes nothing."""
    arrays = official_checkpoint(np.random.default_rng(0))
    np.savez(tmp_path / "vit.npz", **arrays)
    model = from_pretrained(tmp_path / "vit.npz", dtype=np.float64)
    write_safetensors(tmp_path / "vit.safetensors", minivit_to_timm(model))
    via_timm = from_pretrained(tmp_path / "vit.safetensors", dtype=np.float64, heads=H)
    for (name, a), (_, b) in zip(model.named_parameters(), via_timm.named_parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_timm_heads_must_be_known(tmp_path):
    write_safetensors(tmp_path / "vit.safetensors", timm_checkpoint(np.random.default_rng(0)))
    with pytest.raises(CheckpointError, match="width 16 cannot be read from its weights: pass "
                                              "heads="):
        from_pretrained(tmp_path / "vit.safetensors")


def test_real_timm_vision_transformer(tmp_path):
    """timm's own VisionTransformer, random weights, saved as .safetensors: same logits and the
    same image gradients in minivit."""
    pytest.importorskip("timm", reason="timm is not installed; this test checks minivit against "
                                       "timm's own VisionTransformer: `pip install timm`")
    torch = pytest.importorskip("torch")
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(img_size=SIZE, patch_size=P, embed_dim=D, depth=DEPTH, num_heads=H,
                            num_classes=K).double().eval()
    with torch.no_grad():  # timm zero-initialises biases (and may the head): perturb them all
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    write_safetensors(tmp_path / "timm.safetensors",
                      {name: t.detach().numpy() for name, t in net.state_dict().items()})
    model = from_pretrained(tmp_path / "timm.safetensors", dtype=np.float64, heads=H)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, C, SIZE, SIZE))
    compare_with_torch(torch, model, net, images, rng, rtol=1e-5, atol=1e-7)


# --- the .safetensors format ---------------------------------------------------------------------

def raw_safetensors(path, header, data=b"", length=None):
    """A hand-made file: 8-byte header length (or a lie about it), JSON header, data bytes."""
    encoded = json.dumps(header).encode() if isinstance(header, dict) else header
    length = len(encoded) if length is None else length
    path.write_bytes(length.to_bytes(8, "little") + encoded + data)
    return path


def test_safetensors_round_trip_keeps_dtypes_shapes_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"f64": rng.standard_normal((2, 3)), "f32": rng.standard_normal(5).astype(np.float32),
              "f16": np.arange(4, dtype=np.float16), "i64": np.arange(6).reshape(3, 2),
              "flags": np.array([True, False]), "scalar": np.array(2.5), "empty": np.zeros((0, 3)),
              "transposed": rng.standard_normal((3, 4)).T,
              "big_endian": np.arange(3, dtype=">f4")}
    write_safetensors(tmp_path / "x.safetensors", arrays, metadata={"format": "pt"})
    back = read_safetensors(tmp_path / "x.safetensors")
    assert list(back) == list(arrays)
    for name, array in arrays.items():
        assert back[name].shape == array.shape and back[name].dtype == array.dtype.newbyteorder("=")
        np.testing.assert_array_equal(back[name], array, err_msg=name)
    assert safetensors_metadata(tmp_path / "x.safetensors") == {"format": "pt"}
    assert (8 + int.from_bytes((tmp_path / "x.safetensors").read_bytes()[:8], "little")) % 8 == 0


def test_bfloat16_is_decoded_exactly(tmp_path):
    """bfloat16 is the top 16 bits of a float32: 0x3F80 is 1.0, 0xC040 -3.0, 0x4049 3.140625."""
    bits = np.array([0x3F80, 0xC040, 0x4049, 0x7F80, 0x0000], "<u2")
    expected = np.array([1.0, -3.0, 3.140625, np.inf, 0.0], np.float32)
    np.testing.assert_array_equal(bfloat16_to_float32(bits), expected)
    path = raw_safetensors(tmp_path / "bf16.safetensors",
                           {"w": {"dtype": "BF16", "shape": [5], "data_offsets": [0, 10]}},
                           bits.tobytes())
    w = read_safetensors(path)["w"]
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w, expected)


def test_corrupt_safetensors_files_give_one_clear_error(tmp_path):
    entry = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    data = np.arange(4, dtype="<f4").tobytes()
    cases = [
        (b"\x10\x00", "too short for the 8-byte header length"),
        (raw_safetensors(tmp_path / "a", entry, data, length=10 ** 6).read_bytes(),
         "header length 1000000 runs past the end of the file"),
        (raw_safetensors(tmp_path / "b", entry, data[:12]).read_bytes(),
         "truncated or corrupt: tensor 'w' needs bytes 0..16 of the data, which has 12"),
        (raw_safetensors(tmp_path / "c", b"{not json", data).read_bytes(),
         "corrupt .safetensors header"),
        (raw_safetensors(tmp_path / "d", {"w": {**entry["w"], "data_offsets": [0, 12]}},
                         data).read_bytes(), r"needs 16 bytes but has 12"),
        (raw_safetensors(tmp_path / "e", {"w": {**entry["w"], "dtype": "F8_E4M3"}},
                         data).read_bytes(), "dtype 'F8_E4M3', which minivit cannot read"),
    ]
    for content, message in cases:
        (tmp_path / "bad.safetensors").write_bytes(content)
        with pytest.raises(CheckpointError, match=message):
            read_safetensors(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        read_safetensors(tmp_path / "missing.safetensors")


def test_save_pretrained_checks_layout_and_suffix(tmp_path):
    model = minivit.ViT(image_size=SIZE, patch_size=P, num_classes=K, dim=D, depth=1, heads=H,
                        mlp_dim=M)
    with pytest.raises(ValueError, match="timm layout is saved as a .safetensors file"):
        save_pretrained(model, tmp_path / "w.npz", layout="timm")
    with pytest.raises(ValueError, match="layout must be 'official' or 'timm'"):
        save_pretrained(model, tmp_path / "w.npz", layout="jax")


def test_files_of_the_safetensors_package_and_of_minivit_are_interchangeable(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="the safetensors package "
                                            "is not installed; minivit does not need it")
    rng = np.random.default_rng(0)
    arrays = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": np.arange(5),
              "c": rng.standard_normal(2).astype(np.float16)}
    safetensors_numpy.save_file(arrays, str(tmp_path / "theirs.safetensors"),
                                metadata={"format": "pt"})
    write_safetensors(tmp_path / "ours.safetensors", arrays, metadata={"format": "pt"})
    theirs, ours = (read_safetensors(tmp_path / "theirs.safetensors"),
                    safetensors_numpy.load_file(str(tmp_path / "ours.safetensors")))
    assert safetensors_metadata(tmp_path / "theirs.safetensors") == {"format": "pt"}
    for name, array in arrays.items():
        np.testing.assert_array_equal(theirs[name], array, err_msg=f"{name} written by safetensors")
        np.testing.assert_array_equal(ours[name], array, err_msg=f"{name} written by minivit")
