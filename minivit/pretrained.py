"""Pretrained weights: moving a ViT's weights between the official layout, timm's and minivit's.

The same network is stored three ways. With D the width, H heads of Dh = D/H features, P the
patch size, C channels, M the MLP width and K classes:

    minivit                    official .npz (JAX)                  timm .safetensors
    patch_embed.proj.weight    embedding/kernel (P P C D)           patch_embed.proj.weight
      (P*P*C D), rows (p1 p2 c)                                       (D C P P)
    blocks.i.attn.qkv.weight   .../{query,key,value}/kernel         blocks.i.attn.qkv.weight
      (D 3D), columns (3 H Dh)   (D H Dh) each                        (3D D)
    blocks.i.attn.proj.weight  .../out/kernel (H Dh D)              (D D)
    blocks.i.mlp.fc1.weight    .../MlpBlock_3/Dense_0/kernel (D M)  blocks.i.mlp.fc1.weight (M D)
    norm.{weight,bias}         Transformer/encoder_norm/{scale,bias}  norm.{weight,bias}

minivit stores Linear weights (Din Dout) like the JAX kernels, so the official layout only needs
reshapes (splitting D into H Dh) and timm's only transposes (torch stores (Dout Din)). Every
conversion is a pure rearrangement of entries, so a round trip is exact.

    model = minivit.pretrained.from_pretrained("ViT-B_16.npz", num_classes=10, image_size=384)
    save_pretrained(model, "mine.safetensors", layout="timm")

The GELU follows the source: the JAX checkpoints were trained with its tanh approximation, timm's
with the exact erf form (the two differ by up to ~4.7e-4 per activation).
"""
import os
import re
import warnings

import numpy as np

from minivit import backend
from minivit.checkpoint import is_training_checkpoint, load_arrays, read_training, save_arrays
from minivit.cnn import HybridViT
from minivit.errors import CheckpointError
from minivit.model import ViT
from minivit.safetensors import read_safetensors, safetensors_metadata, write_safetensors

# --- helpers shared by both layouts -----------------------------------------------------------

def _require(arrays, name):
    if name not in arrays:
        raise CheckpointError(f"the checkpoint has no tensor {name!r}, which a ViT needs")
    return arrays[name]


def _count_blocks(names, pattern):
    """The depth: how many consecutive block indices i, from 0, have keys matching `pattern`."""
    found = {int(m.group(1)) for n in names if (m := re.match(pattern, n))}
    depth = 0
    while depth in found:
        depth += 1
    return depth


def _grid_tokens(pos_embed, has_cls):
    """Split the length of position embeddings (1 L D) into (class positions, grid side g).

    Usually L = 1 + g*g: the class token has a position of its own. Some files (big_vision, timm's
    no_embed_class) have L = g*g and add positions before the class token is prepended. As
    g*g + 1 is never a square for g >= 1, the length alone tells the two apart."""
    length = pos_embed.shape[1]
    for cls_positions in (0, 1) if has_cls else (0,):
        side = int(round((length - cls_positions) ** 0.5))
        if side > 0 and side * side == length - cls_positions:
            return cls_positions, side
    raise CheckpointError(f"position embeddings of shape {pos_embed.shape} do not cover a square "
                          "grid of patches")


def _with_cls_position(pos_embed, cls_positions):
    """minivit adds positions after prepending the class token, to (1 1+N D). A file without the
    class position added none to that token: the same as adding a zero row."""
    if cls_positions == 1:
        return pos_embed
    return np.concatenate([np.zeros_like(pos_embed[:, :1]), pos_embed], axis=1)


def _pos_config(pos_embed, has_cls, patch_size):
    cls_positions, side = _grid_tokens(pos_embed, has_cls)
    pos = _with_cls_position(pos_embed, cls_positions) if has_cls else pos_embed
    return pos, side * patch_size


# --- the official layout (google-research/vision_transformer, big_vision) -----------------------

# Module names inside Transformer/encoderblock_{i}/: flax numbers submodules in creation order,
# and the original code also counted the two Dropouts, hence _1, _2 and _3.
VIT_JAX = dict(norm1="LayerNorm_0", attn="MultiHeadDotProductAttention_1", norm2="LayerNorm_2",
               mlp="MlpBlock_3")
BIG_VISION = dict(norm1="LayerNorm_0", attn="MultiHeadDotProductAttention_0", norm2="LayerNorm_1",
                  mlp="MlpBlock_0")


def _official_names(arrays):
    """Strip big_vision's 'params/' prefix (and drop what lies outside it, e.g. optimizer state);
    return (arrays, block naming, key of the position embeddings)."""
    if any(name.startswith("params/") for name in arrays):
        arrays = {name[len("params/"):]: a for name, a in arrays.items()
                  if name.startswith("params/")}
    block = "Transformer/encoderblock_0/"
    if any(name.startswith(block + BIG_VISION["attn"]) for name in arrays):
        naming = BIG_VISION
    elif any(name.startswith(block + VIT_JAX["attn"]) for name in arrays):
        naming = VIT_JAX
    else:
        raise CheckpointError(f"the checkpoint has no tensor "
                              f"'{block}{VIT_JAX['attn']}/query/kernel' (nor big_vision's "
                              f"'{BIG_VISION['attn']}'): it is not a ViT in the official layout")
    pos_key = next((k for k in ("Transformer/posembed_input/pos_embedding", "pos_embedding")
                    if k in arrays), "Transformer/posembed_input/pos_embedding")
    return arrays, naming, pos_key


def official_to_minivit(arrays):
    """Official (JAX) weights {key: array} -> (minivit state dict, ViT config).

    The architecture is read off the shapes: P, C and D from `embedding/kernel` (P P C D), H and
    Dh from `query/kernel` (D H Dh), M from `Dense_0/kernel` (D M), the depth from the number of
    `encoderblock_i`, K from `head/kernel` (D K), the image size from the position embeddings
    (1 1+g*g D): g*P; pool 'cls' if there is a `cls` token, else 'gap'.

    Both the original vision_transformer names and the newer big_vision ones ('params/' prefix,
    MultiHeadDotProductAttention_0, LayerNorm_1, MlpBlock_0, `pos_embedding` without the class
    position) are read. `pre_logits` (a Dense + tanh before the head in the ImageNet-21k
    checkpoints) is dropped: the paper drops it for fine-tuning, and minivit's ViT has none.
    A checkpoint without `head/kernel` gives config num_classes None (a new head is needed)."""
    arrays, naming, pos_key = _official_names(arrays)
    used = set()

    def take(key):
        """arrays[key], remembered, so that keys left unread can be reported as unexpected."""
        used.add(key)
        return _require(arrays, key)

    kernel = take("embedding/kernel")                                 # P P C D
    P, _, C, D = kernel.shape
    has_cls = "cls" in arrays
    pos, image_size = _pos_config(take(pos_key), has_cls, P)
    block = "Transformer/encoderblock_0/"
    heads = take(f"{block}{naming['attn']}/query/kernel").shape[1]    # D H Dh
    mlp_dim = take(f"{block}{naming['mlp']}/Dense_0/kernel").shape[1]  # D M
    head = arrays.get("head/kernel")                                  # D K
    config = dict(image_size=image_size, patch_size=P, in_channels=C, dim=D,
                  depth=_count_blocks(arrays, r"Transformer/encoderblock_(\d+)/"), heads=heads,
                  mlp_dim=mlp_dim, num_classes=None if head is None else head.shape[1],
                  pool="cls" if has_cls else "gap", gelu="tanh")

    state = {"patch_embed.proj.weight": kernel.reshape(P * P * C, D),  # rows (p1 p2 c)
             "patch_embed.proj.bias": take("embedding/bias"), "pos_embed": pos}
    if has_cls:
        state["cls_token"] = take("cls")
    for i in range(config["depth"]):
        ours, theirs = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        attn, mlp = theirs + naming["attn"], theirs + naming["mlp"]
        for norm in ("norm1", "norm2"):
            state[ours + norm + ".weight"] = take(f"{theirs}{naming[norm]}/scale")
            state[ours + norm + ".bias"] = take(f"{theirs}{naming[norm]}/bias")
        # q, k, v: kernels (D H Dh) -> (D D), columns (h dh); side by side -> (D 3D), (3 h dh)
        state[ours + "attn.qkv.weight"] = np.concatenate(
            [take(f"{attn}/{x}/kernel").reshape(D, D) for x in ("query", "key", "value")], axis=1)
        state[ours + "attn.qkv.bias"] = np.concatenate(
            [take(f"{attn}/{x}/bias").reshape(D) for x in ("query", "key", "value")])
        state[ours + "attn.proj.weight"] = take(f"{attn}/out/kernel").reshape(D, D)  # (h dh) D
        state[ours + "attn.proj.bias"] = take(f"{attn}/out/bias")
        for fc, dense in (("fc1", "Dense_0"), ("fc2", "Dense_1")):
            state[f"{ours}mlp.{fc}.weight"] = take(f"{mlp}/{dense}/kernel")
            state[f"{ours}mlp.{fc}.bias"] = take(f"{mlp}/{dense}/bias")
    state["norm.weight"] = take("Transformer/encoder_norm/scale")
    state["norm.bias"] = take("Transformer/encoder_norm/bias")
    if head is not None:
        state["head.weight"], state["head.bias"] = take("head/kernel"), take("head/bias")

    unexpected = [k for k in arrays if k not in used and not k.startswith("pre_logits/")]
    if unexpected:
        raise CheckpointError(f"the checkpoint has a tensor {unexpected[0]!r} that minivit's ViT "
                              f"has no place for ({len(unexpected)} unexpected in all)")
    return state, config


def minivit_to_official(model):
    """A ViT's weights in the original official layout (vision_transformer's key names):
    {key: NumPy array}, the inverse of official_to_minivit. (A big_vision file comes back in
    this layout, its class token given the zero position it implicitly had. The GELU form is
    not recorded: from_pretrained reads every .npz as tanh, as the official code trained.)"""
    state = {name: backend.to_device(a, "cpu") for name, a in model.state_dict().items()}
    c = model.config
    P, C, D, H = c["patch_size"], c["in_channels"], c["dim"], c["heads"]
    arrays = {"embedding/kernel": state["patch_embed.proj.weight"].reshape(P, P, C, D),
              "embedding/bias": state["patch_embed.proj.bias"]}
    if "cls_token" in state:
        arrays["cls"] = state["cls_token"]
    arrays["Transformer/posembed_input/pos_embedding"] = state["pos_embed"]
    for i in range(c["depth"]):
        ours, theirs = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        attn, mlp = theirs + VIT_JAX["attn"], theirs + VIT_JAX["mlp"]
        for norm in ("norm1", "norm2"):
            arrays[f"{theirs}{VIT_JAX[norm]}/scale"] = state[ours + norm + ".weight"]
            arrays[f"{theirs}{VIT_JAX[norm]}/bias"] = state[ours + norm + ".bias"]
        weights = np.split(state[ours + "attn.qkv.weight"], 3, axis=1)   # 3 x (D D)
        biases = np.split(state[ours + "attn.qkv.bias"], 3)             # 3 x (D,)
        for x, w, b in zip(("query", "key", "value"), weights, biases):
            arrays[f"{attn}/{x}/kernel"] = w.reshape(D, H, D // H)
            arrays[f"{attn}/{x}/bias"] = b.reshape(H, D // H)
        arrays[f"{attn}/out/kernel"] = state[ours + "attn.proj.weight"].reshape(H, D // H, D)
        arrays[f"{attn}/out/bias"] = state[ours + "attn.proj.bias"]
        for fc, dense in (("fc1", "Dense_0"), ("fc2", "Dense_1")):
            arrays[f"{mlp}/{dense}/kernel"] = state[f"{ours}mlp.{fc}.weight"]
            arrays[f"{mlp}/{dense}/bias"] = state[f"{ours}mlp.{fc}.bias"]
    arrays["Transformer/encoder_norm/scale"] = state["norm.weight"]
    arrays["Transformer/encoder_norm/bias"] = state["norm.bias"]
    arrays["head/kernel"], arrays["head/bias"] = state["head.weight"], state["head.bias"]
    return arrays


# --- timm's layout ----------------------------------------------------------------------------

# timm's standard widths all use heads of 64 features, except ViT-H/14 (1280 = 16 x 80). The
# number of heads leaves no trace in the weights (qkv is (3D D) either way), so it must be known.
STANDARD_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}


def _to_minivit_linear(name, array):
    """torch's Linear weight (Dout Din) -> minivit's (Din Dout); everything else as it is."""
    return array.T if name.endswith(".weight") and array.ndim == 2 else array


def timm_to_minivit(arrays, heads=None):
    """timm VisionTransformer weights {name: array} -> (minivit state dict, ViT config).

    timm's names are minivit's; only the layouts differ: Linear weights are transposed, and the
    patch embedding, a Conv2d weight (D C P P), becomes (P*P*C D) with rows (p1 p2 c). `heads` is
    needed unless D is one of timm's standard widths (192, 384, 768, 1024, 1280). pos_embed of
    length g*g with a class token (timm's no_embed_class) gets a zero row for the class position.
    A checkpoint without `head.weight` gives config num_classes None (a new head is needed)."""
    conv = _require(arrays, "patch_embed.proj.weight")                # D C P P
    D, C, P, _ = conv.shape
    has_cls = "cls_token" in arrays
    pos, image_size = _pos_config(_require(arrays, "pos_embed"), has_cls, P)
    if heads is None:
        if D not in STANDARD_HEADS:
            raise CheckpointError(f"the number of heads of a timm ViT of width {D} cannot be read "
                                  "from its weights: pass heads=")
        heads = STANDARD_HEADS[D]
    head = arrays.get("head.weight")
    config = dict(image_size=image_size, patch_size=P, in_channels=C, dim=D,
                  depth=_count_blocks(arrays, r"blocks\.(\d+)\."), heads=int(heads),
                  mlp_dim=_require(arrays, "blocks.0.mlp.fc1.weight").shape[0],
                  num_classes=None if head is None else head.shape[0],
                  pool="cls" if has_cls else "gap", gelu="erf")
    state = {name: _to_minivit_linear(name, a) for name, a in arrays.items()}
    state["patch_embed.proj.weight"] = conv.transpose(2, 3, 1, 0).reshape(P * P * C, D)
    state["pos_embed"] = pos
    return state, config


def minivit_to_timm(model):
    """A ViT's weights in timm's layout: {name: NumPy array}, the inverse of timm_to_minivit."""
    state = {name: backend.to_device(a, "cpu") for name, a in model.state_dict().items()}
    P, C = model.config["patch_size"], model.config["in_channels"]
    arrays = {name: _to_minivit_linear(name, a) for name, a in state.items()}  # .T is its inverse
    kernel = state["patch_embed.proj.weight"].reshape(P, P, C, -1)              # P P C D
    arrays["patch_embed.proj.weight"] = kernel.transpose(3, 2, 0, 1)            # D C P P
    return arrays


# --- loading and saving a model ------------------------------------------------------------------

def from_pretrained(path, num_classes=None, image_size=None, dtype=np.float32, heads=None):
    """A ViT with the weights of an official .npz checkpoint, a timm .safetensors file or a
    checkpoint written by minivit.train (whose model_config may also build a hybrid, a
    minivit.cnn.HybridViT: model_from_config).

    The architecture is inferred from the weights (see official_to_minivit, timm_to_minivit) and
    the GELU follows the source ('tanh' for .npz, 'erf' for timm). Fine-tuning, as in the paper:
    - image_size, if it differs from the checkpoint's, interpolates the position embeddings to
      the new patch grid (bilinear, corners aligned; ViT.resize);
    - num_classes, if it differs from the checkpoint's (or the file has no head), replaces the
      head with a zero-initialised Linear (D K).
    heads: for a timm file of a non-standard width (see timm_to_minivit); files written by
    save_pretrained record it in their metadata."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1]
    dropped_pre_logits = False
    if is_training_checkpoint(path):  # minivit.train's last.npz or best.npz
        checkpoint = read_training(path)
        state, config = checkpoint.model, dict(checkpoint.model_config)
    elif suffix == ".npz":
        arrays = load_arrays(path)
        state, config = official_to_minivit(arrays)
        dropped_pre_logits = any("pre_logits/" in name for name in arrays)
    elif suffix == ".safetensors":
        arrays = read_safetensors(path)
        if heads is None:
            heads = safetensors_metadata(path).get("num_heads")
        state, config = timm_to_minivit(arrays, None if heads is None else int(heads))
    else:
        raise CheckpointError(f"cannot tell the layout of {path}: expected an official .npz "
                         "checkpoint or a timm .safetensors file")

    if num_classes is None:
        if config["num_classes"] is None:
            raise CheckpointError(f"{path} has no classifier head: pass num_classes= to add a "
                                  "new, zero-initialised one")
        num_classes = config["num_classes"]
    model = model_from_config({**config, "num_classes": num_classes}).to(dtype=dtype)
    if num_classes != config["num_classes"]:
        # a new head: keep the ViT's own, which starts at zero (the paper's fine-tuning head)
        state = {name: a for name, a in state.items() if not name.startswith("head.")}
        state.update({f"head.{name}": p.data for name, p in model.head.named_parameters()})
    elif dropped_pre_logits:
        warnings.warn(f"{path} has a pre_logits layer, which minivit drops; its head was trained "
                      "on that layer's output, so pass num_classes= to fine-tune a new one",
                      stacklevel=2)
    model.load_state_dict(state)  # cast to the model's dtype
    if image_size is not None and image_size != config["image_size"]:
        model.resize(image_size)
    return model


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def model_from_config(config):
    """A new model from the model_config of a minivit.train checkpoint (model.config): a ViT,
    or, when it has stem_widths, a HybridViT (minivit.cnn). The config is data read from a
    file: it chooses between these two classes and nothing else, and a hybrid's stem is checked
    (stem_widths a non-empty list of positive integers, stem_depth and groups positive
    integers) before anything is built. TypeError or ValueError if it builds neither."""
    if "stem_widths" not in config:
        return ViT(**config)
    widths = config["stem_widths"]
    if not (isinstance(widths, (list, tuple)) and widths and all(map(_positive_int, widths))):
        raise ValueError(f"stem_widths must be a list of positive integers, not {widths!r}")
    for key in ("stem_depth", "groups"):
        if key in config and not _positive_int(config[key]):
            raise ValueError(f"{key} must be a positive integer, not {config[key]!r}")
    return HybridViT(**{**config, "stem_widths": tuple(widths)})


def from_training_checkpoint(checkpoint):
    """The ViT (or hybrid, model_from_config) a checkpoint.TrainingCheckpoint holds, at the
    image size it was saved at."""
    try:
        model = model_from_config(checkpoint.model_config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's model_config cannot build a ViT ({error})") from None
    return model.load_state_dict(checkpoint.model)


def trained_normalization(path):
    """How the images a checkpoint was trained on were normalised (a TrainConfig.normalize): a
    minivit.train checkpoint says so in its config; the official and timm weights, and files
    written by save_pretrained, are taken to have seen pixels mapped to [-1, 1] ('half')."""
    if is_training_checkpoint(path):
        return read_training(path).config.get("normalize", "dataset")
    return "half"


def save_pretrained(model, path, layout="official"):
    """Write a ViT's weights in the official layout (.npz) or timm's (.safetensors); the heads
    go into the .safetensors metadata, as timm's weights do not show them."""
    path = os.fspath(path)
    suffixes = {"official": ".npz", "timm": ".safetensors"}
    if layout not in suffixes:
        raise ValueError(f"layout must be 'official' or 'timm', not {layout!r}")
    if os.path.splitext(path)[1] != suffixes[layout]:
        raise ValueError(f"the {layout} layout is saved as a {suffixes[layout]} file, "
                         f"not {os.path.basename(path)}")
    if isinstance(model, HybridViT):
        raise ValueError(f"the {layout} layout holds a plain ViT's patch embedding, and has no "
                         "place for a hybrid's CNN stem: save it with minivit.save")
    if layout == "official":
        save_arrays(path, minivit_to_official(model))
    else:
        write_safetensors(path, minivit_to_timm(model),
                          metadata={"format": "pt", "num_heads": model.config["heads"]})
