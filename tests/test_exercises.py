"""The exercises in chapters/exercises, graded by the gradient checks that minivit's own ops pass.

    python -m pytest --exercises -k layernorm     # grade chapters/exercises/layernorm.py
    python -m pytest --exercises                  # grade every exercise
    python -m pytest --exercises-dir=DIR -k gelu  # grade DIR/gelu.py instead

Without --exercises the same tests grade the reference solutions in chapters/exercises/solutions,
and the tests marked `harness` check the grader itself: untouched stubs read "not done yet", a
wrong backward reads gradcheck's message. CI runs both.

Each case grades one exercise on one set of shapes, in four steps, and stops at the first that fails
with a single line that says what is wrong:
  1. the forward still agrees with minivit's op (the exercise is the backward, not the forward);
  2. backward is written: it does not raise NotImplementedError   -> "not done yet";
  3. it returns a tuple with one gradient per input, each of its input's shape;
  4. gradcheck: in float64, central differences of the forward agree with backward
     -> gradcheck's message, naming the input and the worst entry;
     and the gradients equal those of minivit's own op.

The other exercises are functions on NumPy arrays (patchify, embed_tokens, attention_forward,
block_forward, interpolate_pos_embed, adamw_step, attention_rollout), each graded against the
minivit code it mirrors, in the same spirit:
  1. the function is written: it does not raise NotImplementedError   -> "not done yet";
  2. it returns what was asked: a NumPy array (or a tuple of them) of the expected shape and dtype;
  3. its values agree with minivit's (exactly, for a function that only moves entries)
     -> how many entries are wrong, the worst one and where it is, yours against the expected
     value, and, when the answer is a known mistake (a transposed layout, a missing term), which.
`-k attention` grades attention.py alone: attention_forward and attention_rollout, whose names
contain it, skip and say how to grade them.
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import einops
import numpy as np
import pytest

from minivit import GradcheckError, Tensor, analysis, gradcheck, ops
from minivit.interpolate import interpolation_matrix
from minivit.model import Block, PatchEmbed, ViT, resize_pos_embed
from minivit.nn import Module
from minivit.optim import AdamW

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "chapters" / "exercises"
SOLUTIONS = EXERCISES / "solutions"
PATCHES = "b c (h p1) (w p2) -> b (h w) (p1 p2 c)"


# --- the grader ---------------------------------------------------------------------------------

def fail(message):
    """Fail the test with just `message`: no traceback for the learner to dig through."""
    pytest.fail(message, pytrace=False)


def shown(path):
    """A path as the learner typed it: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


_modules = {}


def load_class(path, class_name, kind="class"):
    """The class `class_name` (or another attribute: a function) from the Python file at `path`
    (imported once per run)."""
    if not path.exists():
        fail(f"no file {shown(path)}")
    if path not in _modules:
        spec = importlib.util.spec_from_file_location(f"exercise_{len(_modules)}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[path] = module
    if not hasattr(_modules[path], class_name):
        fail(f"{shown(path)} defines no {kind} {class_name}")
    return getattr(_modules[path], class_name)


def random_inputs(shapes, seed=0):
    """{name: float64 Tensor of that shape needing a gradient}, standard normal entries."""
    rng = np.random.default_rng(seed)
    return {name: Tensor(rng.standard_normal(shape), requires_grad=True)
            for name, shape in shapes.items()}


@pytest.fixture(scope="session")
def exercise_dir(request):
    """The folder being graded: --exercises-dir, else chapters/exercises with --exercises, else
    the reference solutions."""
    config = request.config
    if config.getoption("--exercises-dir") is not None:
        return (config.invocation_params.dir / config.getoption("--exercises-dir")).resolve()
    return EXERCISES if config.getoption("--exercises") else SOLUTIONS


@pytest.fixture
def grade(exercise_dir):
    """grade(name, class_name, reference, shapes, options): grade the Function `class_name` of
    `<exercise_dir>/<name>.py`, built with `options`, on inputs of `shapes` ({name: shape}),
    against `reference(*inputs, **options)`, minivit's own op."""

    def grade(name, class_name, reference, shapes, options):
        path = exercise_dir / f"{name}.py"
        Op = load_class(path, class_name)
        inputs = random_inputs(shapes)
        copies = random_inputs(shapes)  # the same values, for minivit's op

        # 1. the forward is given: it must still agree with minivit's op
        out, expected = Op(**options)(*inputs.values()), reference(*copies.values(), **options)
        if out.shape != expected.shape or not np.allclose(out.data, expected.data,
                                                          rtol=1e-10, atol=1e-12):
            fail(f"{name}: the forward of {class_name} no longer agrees with minivit's "
                 f"(the exercise is the backward: restore the forward in {shown(path)})")

        # 2. the backward is written
        upstream = np.random.default_rng(1).standard_normal(out.shape)
        try:
            grads, not_done = out.creator.backward(upstream), None
        except NotImplementedError as error:
            grads, not_done = None, str(error).removeprefix("exercise not done yet: ")
        if not_done is not None:  # failed out here, not in `except`: no chained traceback
            fail(f"{name}: not done yet -- {not_done}, in {shown(path)}")

        # 3. one gradient per input, each of its input's shape
        names = ", ".join(inputs)
        if not isinstance(grads, (tuple, list)):
            advice = ": write `return (dx,)`" if len(inputs) == 1 else ""
            fail(f"{name}: backward must return a tuple with one gradient per input ({names}), "
                 f"got a {type(grads).__name__}{advice}")
        if len(grads) != len(inputs):
            fail(f"{name}: backward returned {len(grads)} gradients for {len(inputs)} inputs ({names})")
        for (input_name, tensor), g in zip(inputs.items(), grads):
            shape = tuple(getattr(g, "shape", ()))
            if shape != tensor.shape:
                fail(f"{name}: the gradient for {input_name} has shape {shape}, "
                     f"but {input_name} has shape {tensor.shape} (a gradient has its input's shape)")

        # 4. finite differences, then minivit's own gradients
        try:
            gradcheck(lambda *xs: Op(**options)(*xs), inputs, name=name)
            wrong = None
        except GradcheckError as error:
            wrong = str(error)
        if wrong is not None:
            fail(f"{wrong}\n(analytic: your backward; numerical: central differences of the forward)")
        expected.backward(upstream)
        for (input_name, tensor), g in zip(copies.items(), grads):
            if not np.allclose(g, tensor.grad, rtol=1e-7, atol=1e-10):
                fail(f"{name}: the gradient for {input_name} differs from minivit's by up to "
                     f"{np.abs(g - tensor.grad).max():.2e}")

    return grade


# --- the grader of the exercises that are functions on NumPy arrays ---------------------------

def copied(value):
    """`value` with its arrays copied (in lists, tuples and dicts too): a function that writes
    into its arguments cannot change the grader's."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (list, tuple)):
        return type(value)(copied(v) for v in value)
    if isinstance(value, dict):
        return {key: copied(v) for key, v in value.items()}
    return value


def described(value):
    """What a returned value is, in a few words: 'a list', 'None', 'a ndarray of shape (2, 3)'."""
    if value is None:
        return "None"
    shape = getattr(value, "shape", None)
    return f"a {type(value).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


class Graded:
    """One exercise file of functions, being graded: call its functions, check what they return."""

    def __init__(self, name, path):
        self.name, self.path = name, path

    def call(self, function_name, *args, **kwargs):
        """function_name(*args, **kwargs) from the exercise file, on copies of the arguments;
        a NotImplementedError reads "not done yet"."""
        function = load_class(self.path, function_name, kind="function")
        try:
            result, not_done = function(*copied(args), **copied(kwargs)), None
        except NotImplementedError as error:
            result, not_done = None, str(error).removeprefix("exercise not done yet: ")
        if not_done is not None:  # failed out here, not in `except`: no chained traceback
            fail(f"{self.name}: not done yet -- {not_done}, in {shown(self.path)}")
        return result

    def unpack(self, what, result, names):
        """The outputs of a function that returns several, `names`, as a tuple."""
        if not isinstance(result, (tuple, list)) or len(result) != len(names):
            fail(f"{self.name}: {what} must return a tuple ({', '.join(names)}), "
                 f"got {described(result)}" + (f" of length {len(result)}"
                                               if isinstance(result, (tuple, list)) else ""))
        return tuple(result)

    def check(self, what, got, expected, exact=False, hints=()):
        """Fail unless `got`, the value of `what`, is the array `expected`: its type, then its shape
        and dtype, then its values (to 1e-9 relative, or exactly). A wrong value names how many
        entries are wrong and the worst; `hints` are (test, message) pairs, the test an array (a
        known wrong answer: the message applies when `got` equals it) or a function of `got`
        returning True when the message applies; the first that applies is added."""
        name = self.name
        if got is None:
            fail(f"{name}: {what} is None (is a `return` missing?)")
        if isinstance(got, Tensor):
            fail(f"{name}: {what} is a minivit Tensor: return a NumPy array (the Tensor's .data)")
        if not isinstance(got, np.ndarray):
            fail(f"{name}: {what} is {described(got)}, not a NumPy array")
        hint = next((message for test, message in hints if applies(test, got)), None)
        advice = f"\n({hint})" if hint else ""
        if got.shape != expected.shape:
            fail(f"{name}: {what} has shape {got.shape}, expected {expected.shape}{advice}")
        if got.dtype != expected.dtype:
            fail(f"{name}: {what} has dtype {got.dtype}, expected {expected.dtype} (the inputs are "
                 f"{expected.dtype}: keep them so){advice}")
        wrong = got != expected if exact else ~np.isclose(got, expected, rtol=1e-9, atol=1e-12)
        if wrong.any():
            error = np.where(wrong, np.abs(got - expected), 0.0)
            error[np.isnan(error)] = np.inf
            worst = np.unravel_index(np.argmax(error), got.shape)
            if not hint and np.isnan(got).any():
                advice = "\n(yours has NaN entries: a 0/0, or inf - inf, somewhere?)"
            fail(f"{name}: {what} is wrong at {int(wrong.sum())} of {wrong.size} entries; "
                 f"worst entry {tuple(map(int, worst))}: yours {got[worst]:.6g}, "
                 f"expected {expected[worst]:.6g}{advice}")


def applies(test, got):
    """Whether a hint's test holds for `got`: equal to a known wrong answer, or test(got)."""
    if callable(test):
        return bool(test(got))
    return test.shape == got.shape and bool(np.allclose(got, test, rtol=1e-9, atol=1e-12))


@pytest.fixture
def exercise(exercise_dir):
    """exercise(name): the file <exercise_dir>/<name>.py, ready to grade (see Graded)."""
    return lambda name: Graded(name, exercise_dir / f"{name}.py")


@pytest.fixture(autouse=True)
def graded_alone(request):
    """`-k NAME` picks every test whose name contains NAME, so `-k attention` (chapter 3's
    command) would grade attention_forward and attention_rollout too: with -k exactly one
    exercise's name, the others skip, saying how to grade them."""
    keyword = (request.config.getoption("keyword") or "").strip()
    name = getattr(request.node, "originalname", "").removeprefix("test_")
    if keyword in STUBS and name in STUBS and name != keyword:
        pytest.skip(f"-k {keyword} grades {keyword}.py only; grade {name}.py with -k {name}")


# --- one test per exercise, each on several shapes and the edge cases ---------------------------
# The ids say what each case is about; -k picks an exercise (or a case: -k "layernorm and batch1").

@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(x=(2, 5, 4), weight=(4, 3), bias=(3,)), {}, id="tokens"),
    pytest.param(dict(x=(1, 1, 4), weight=(4, 1), bias=(1,)), {}, id="batch1-one-token-one-output"),
    pytest.param(dict(x=(3, 4), weight=(4, 2)), {}, id="rows-no-bias"),
])
def test_linear(grade, shapes, options):
    grade("linear", "Linear", ops.linear, shapes, options)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(x=(2, 5, 4)), dict(approximate="erf"), id="erf"),
    pytest.param(dict(x=(1,)), dict(approximate="erf"), id="erf-one-entry"),
    pytest.param(dict(x=(2, 5, 4)), dict(approximate="tanh"), id="tanh"),
])
def test_gelu(grade, shapes, options):
    grade("gelu", "GELU", lambda x, approximate: ops.gelu(x, approximate), shapes, options)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(x=(2, 5, 4), gamma=(4,), beta=(4,)), dict(eps=1e-6), id="tokens"),
    pytest.param(dict(x=(1, 1, 2), gamma=(2,), beta=(2,)), dict(eps=1e-6), id="batch1-one-token"),
    pytest.param(dict(x=(3, 7), gamma=(7,), beta=(7,)), dict(eps=1e-2), id="rows-big-eps"),
])
def test_layernorm(grade, shapes, options):
    grade("layernorm", "LayerNorm", ops.layernorm, shapes, options)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(x=(2, 3, 5)), dict(axis=-1), id="last-axis"),
    pytest.param(dict(x=(1, 1)), dict(axis=-1), id="one-entry"),
    pytest.param(dict(x=(4, 1, 3)), dict(axis=-1), id="middle-axis-of-length-1"),
    pytest.param(dict(x=(3, 4)), dict(axis=0), id="axis0"),
])
def test_softmax(grade, shapes, options):
    grade("softmax", "Softmax", lambda x, axis: ops.softmax(x, axis), shapes, options)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(qkv=(2, 5, 12)), dict(heads=2), id="two-heads"),
    pytest.param(dict(qkv=(1, 1, 6)), dict(heads=2), id="batch1-one-token"),
    pytest.param(dict(qkv=(2, 3, 9)), dict(heads=1), id="one-head"),
])
def test_attention(grade, shapes, options):
    grade("attention", "Attention", lambda qkv, heads: ops.attention(qkv, heads), shapes, options)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(logits=(3, 4)), dict(labels=np.array([2, 0, 1]), label_smoothing=0.0), id="plain"),
    pytest.param(dict(logits=(3, 4)), dict(labels=np.array([2, 0, 1]), label_smoothing=0.1),
                 id="label-smoothing"),
    pytest.param(dict(logits=(1, 5)), dict(labels=np.array([4]), label_smoothing=0.0), id="batch1"),
])
def test_cross_entropy(grade, shapes, options):
    grade("cross_entropy", "CrossEntropy", ops.cross_entropy, shapes, options)


def patch_embedding(images, weight, bias, patch_size):
    """minivit's way: two ops, rearrange then linear."""
    patches = ops.rearrange(images, PATCHES, p1=patch_size, p2=patch_size)
    return ops.linear(patches, weight, bias)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(images=(2, 3, 4, 6), weight=(12, 5), bias=(5,)), dict(patch_size=2),
                 id="rgb-six-patches"),
    pytest.param(dict(images=(1, 1, 2, 2), weight=(4, 1), bias=(1,)), dict(patch_size=2),
                 id="batch1-one-patch-one-channel"),
    pytest.param(dict(images=(1, 2, 8, 4), weight=(32, 3), bias=(3,)), dict(patch_size=4),
                 id="not-square"),
])
def test_patch_embed(grade, shapes, options):
    grade("patch_embed", "PatchEmbedding", patch_embedding, shapes, options)


# --- the exercises on NumPy arrays: each graded against the minivit code it mirrors -------------

def minivit_patches(images, patch_size):
    """minivit's PatchEmbed with its projection made the identity, so that its output is its
    rearrangement (its check that the images are square switched off: the pattern needs no
    square)."""
    B, C, H, W = images.shape
    rows = patch_size * patch_size * C
    embed = PatchEmbed(H, patch_size, C, rows)
    embed.check = lambda shape: None
    embed.proj.weight.data, embed.proj.bias.data = np.eye(rows), np.zeros(rows)
    return embed(Tensor(images)).data


@pytest.mark.parametrize("shape, patch_size", [
    pytest.param((2, 3, 4, 4), 2, id="rgb-four-patches"),
    pytest.param((2, 3, 4, 6), 2, id="not-square"),
    pytest.param((1, 2, 8, 4), 4, id="batch1-tall"),
    pytest.param((2, 3, 3, 3), 1, id="one-pixel-patches"),
    pytest.param((2, 3, 4, 4), 4, id="one-patch"),
])
def test_patchify(exercise, shape, patch_size):
    ex = exercise("patchify")
    images = np.random.default_rng(0).standard_normal(shape)
    (B, _, H, W), P = shape, patch_size
    expected = minivit_patches(images, P)
    cut = lambda pattern: einops.rearrange(images, f"b c (h p1) (w p2) -> {pattern}", p1=P, p2=P)  # noqa: E731
    got = ex.call("patchify", images, P)
    ex.check(f"patchify(images {shape}, {P})", got, expected, exact=True, hints=[
        (cut("b (h w) (c p1 p2)"), "each patch is ordered (c p1 p2); minivit's PatchEmbed orders it "
                                   "(p1 p2 c), the channel last"),
        (cut("b (h w) (p2 p1 c)"), "inside a patch the order is (p1 p2 c): the pixel's row p1 "
                                   "first, then its column p2"),
        (cut("b (w h) (p1 p2 c)"), "the patches go column by column; they go row by row over the "
                                   "grid: N = (h w)"),
        (images.reshape(B, expected.shape[1], -1), "a reshape alone keeps the pixels in their "
                                                   "(c h w) order: rearrange moves the axes"),
    ])
    undo = lambda pattern: einops.rearrange(expected, f"{pattern} -> b c (h p1) (w p2)",  # noqa: E731
                                            h=H // P, p1=P, p2=P)
    back = ex.call("unpatchify", expected, P, H, W)
    ex.check(f"unpatchify(patches {expected.shape}, {P}, {H}, {W}), patchify's inverse,", back,
             images, exact=True, hints=[
                 (undo("b (h w) (c p1 p2)"), "you read each patch as (c p1 p2); patchify made it "
                                             "(p1 p2 c)"),
                 (undo("b (w h) (p1 p2 c)"), "you read the patches column by column; they go row "
                                             "by row: N = (h w)"),
             ])


class Capture(Module):
    """A module that keeps its input (and passes it on)."""

    def forward(self, x):
        self.input = x.data.copy()
        return x


@pytest.mark.parametrize("batch, image_size, patch_size, channels, dim", [
    pytest.param(2, 4, 2, 3, 5, id="four-patches"),
    pytest.param(1, 2, 2, 1, 3, id="batch1-one-patch"),
    pytest.param(3, 6, 2, 2, 1, id="width1-nine-patches"),
])
def test_embed_tokens(exercise, batch, image_size, patch_size, channels, dim):
    """Against ViT.forward_features: with no blocks, its final norm sees z0 (caught by Capture)."""
    ex = exercise("embed_tokens")
    rng = np.random.default_rng(0)
    model = ViT(image_size, patch_size, channels, num_classes=2, dim=dim, depth=0, heads=1,
                mlp_dim=2).to(dtype=np.float64).eval()
    model.cls_token.data = rng.standard_normal(model.cls_token.shape)  # ViT's start at zero
    model.pos_embed.data = rng.standard_normal(model.pos_embed.shape)
    model.norm = Capture()
    images = Tensor(rng.standard_normal((batch, channels, image_size, image_size)))
    x = model.patch_embed(images).data                                 # B N D
    model.forward_features(images)
    expected = model.norm.input                                        # B 1+N D
    cls, pos = model.cls_token.data, model.pos_embed.data
    B, N, D = x.shape
    cls_b = np.broadcast_to(cls, (B, 1, D))
    got = ex.call("embed_tokens", x, cls, pos)
    ex.check(f"embed_tokens(x {x.shape}, cls_token {cls.shape}, pos_embed {pos.shape})", got,
             expected, hints=[
                 (np.concatenate([x, cls_b], axis=1) + pos, "the class token goes first (token 0), "
                                                            "before the patches"),
                 (np.concatenate([cls_b, x + pos[:, 1:]], axis=1), "the class token gets a position "
                                                                   "embedding too: pos_embed's row 0"),
                 (np.concatenate([cls_b, x], axis=1), "the position embeddings are not added"),
             ])


def attention_formula(qkv, heads, mask=None, scale=True, layout="three h dh"):
    """Attention written out (the reference where minivit's op has no mask); `scale` and
    `layout` give known mistakes."""
    q, k, v = einops.rearrange(qkv, f"b n ({layout}) -> three b h n dh", three=3, h=heads)
    scores = (q @ k.swapaxes(-1, -2)) * (q.shape[-1] ** -0.5 if scale else 1.0)
    if mask is not None:
        scores = np.where(mask[:, None] if mask.ndim == 3 else mask, scores, -np.inf)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return einops.rearrange((e / e.sum(axis=-1, keepdims=True)) @ v, "b h n dh -> b n (h dh)")


def causal(n):
    """(N N): query i sees keys 0..i."""
    return np.tril(np.ones((n, n), dtype=bool))


def random_mask(batch, n):
    """(B N N) at random, every query keeping at least its own key."""
    return (np.random.default_rng(2).random((batch, n, n)) < 0.5) | np.eye(n, dtype=bool)


@pytest.mark.parametrize("shape, heads, mask", [
    pytest.param((2, 5, 12), 2, None, id="two-heads"),
    pytest.param((2, 3, 9), 1, None, id="one-head"),
    pytest.param((1, 1, 6), 2, None, id="batch1-one-token"),
    pytest.param((2, 4, 12), 2, causal(4), id="causal-mask-NN"),
    pytest.param((2, 5, 18), 3, random_mask(2, 5), id="mask-per-image-BNN"),
    pytest.param((1, 1, 6), 1, np.ones((1, 1), dtype=bool), id="one-token-mask"),
    pytest.param((2, 4, 12), 2, np.ones((4, 4), dtype=bool), id="mask-all-true"),
])
def test_attention_forward(exercise, shape, heads, mask):
    """Without a mask (or with one that masks nothing) against minivit's fused op; with one,
    against the formula written out."""
    ex = exercise("attention_forward")
    qkv = np.random.default_rng(0).standard_normal(shape)
    if mask is None or mask.all():
        expected = ops.attention(Tensor(qkv), heads).data
    else:
        expected = attention_formula(qkv, heads, mask)
    args = () if mask is None else (mask,)
    got = ex.call("attention_forward", qkv, heads, *args)
    masked = "" if mask is None else f", mask {mask.shape}"
    hints = [
        (attention_formula(qkv, heads, mask, scale=False), "the scores are not scaled by "
                                                           "s = Dh^-1/2"),
        (attention_formula(qkv, heads, mask, layout="h three dh"),
         "qkv's last axis is laid out (3 H Dh): q, k and v first, then the heads"),
    ]
    if mask is not None and not mask.all():
        hints.insert(0, (ops.attention(Tensor(qkv), heads).data, "your output ignores the mask"))
    ex.check(f"attention_forward(qkv {shape}, heads={heads}{masked})", got, expected, hints=hints)


@pytest.mark.parametrize("shape, heads, mlp_dim, approximate, eps", [
    pytest.param((2, 5, 8), 2, 12, "erf", 1e-6, id="erf"),
    pytest.param((2, 5, 8), 2, 12, "tanh", 1e-6, id="tanh-approximation"),
    pytest.param((2, 3, 6), 1, 4, "erf", 1e-2, id="one-head-big-eps"),
    pytest.param((1, 1, 4), 2, 8, "erf", 1e-6, id="batch1-one-token"),
])
def test_block_forward(exercise, shape, heads, mlp_dim, approximate, eps):
    """Against minivit.model.Block in float64 and eval mode, every weight random (so that a
    missing bias or LayerNorm scale shows)."""
    ex = exercise("block_forward")
    rng = np.random.default_rng(0)
    D = shape[-1]
    block = Block(D, heads, mlp_dim, gelu=approximate, eps=eps).to(dtype=np.float64).eval()
    for _, p in block.named_parameters():
        p.data = 0.5 * rng.standard_normal(p.shape)
    x = rng.standard_normal(shape)
    expected = block(Tensor(x)).data
    other = {"erf": "tanh", "tanh": "erf"}[approximate]
    other_block = Block(D, heads, mlp_dim, gelu=other, eps=eps).to(dtype=np.float64).eval()
    other_block.load_state_dict(block.state_dict())
    weights = {name: p.data for name, p in block.named_parameters()}
    got = ex.call("block_forward", x, weights, heads, eps=eps, approximate=approximate)
    ex.check(f"block_forward(x {shape}, weights, heads={heads}, eps={eps}, "
             f"approximate={approximate!r})", got, expected, hints=[
                 (other_block(Tensor(x)).data, f"your GELU is its {other!r} form; this case asks "
                                               f"for approximate={approximate!r}"),
             ])


@pytest.mark.parametrize("old, new, dim", [
    pytest.param(3, 8, 4, id="up-3-to-8"),
    pytest.param(5, 3, 4, id="down-5-to-3"),
    pytest.param(4, 4, 3, id="same-grid"),
    pytest.param(3, 1, 2, id="down-to-one-cell"),
    pytest.param(1, 3, 2, id="up-from-one-cell"),
])
def test_interpolate_pos_embed(exercise, old, new, dim):
    ex = exercise("interpolate_pos_embed")
    pos = np.random.default_rng(0).standard_normal((1, 1 + old * old, dim))
    expected = resize_pos_embed(pos, new)

    def resized(grid_of, matrix):
        """The class row, then the grid `grid_of(grid)` resized by `matrix` both ways."""
        grid = grid_of(pos[0, 1:].reshape(old, old, dim))
        out = np.einsum("Ii,ijd,Jj->IJd", matrix, grid, matrix).reshape(1, new * new, dim)
        return np.concatenate([pos[:, :1], out], axis=1)

    got = ex.call("interpolate_pos_embed", pos, new)
    ex.check(f"interpolate_pos_embed(pos_embed {pos.shape}, {new})", got, expected, hints=[
        (lambda got: got.shape == expected.shape and not np.allclose(got[:, 0], pos[:, 0]),
         "row 0, the class token's, must come through unchanged"),
        (resized(lambda grid: grid, interpolation_matrix(old, new, align_corners=False)),
         "you aligned the pixel centres; here the corners are aligned: output i samples the old "
         "grid at i (g - 1) / (G - 1)"),
        (resized(lambda grid: grid.swapaxes(0, 1), interpolation_matrix(old, new)),
         "the grid's rows and columns are swapped: row r, column c of the grid is row 1 + r g + c"),
    ])


def adamw_formula(p, g, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, mistake=None):
    """(p, m, v) after one AdamW step, or after a known mistake's step (for the hints)."""
    b1, b2 = betas
    if mistake == "l2":
        g = g + weight_decay * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    mhat, vhat = (m, v) if mistake == "no-bias-correction" else (m / (1 - b1 ** t), v / (1 - b2 ** t))
    step = mhat / (np.sqrt(vhat + eps) if mistake == "eps-in-sqrt" else np.sqrt(vhat) + eps)
    decay = 0.0 if mistake == "l2" else weight_decay * p * (1 / lr if mistake == "decay-without-lr" else 1)
    return p - lr * (step + decay), m, v


ADAMW_MISTAKES = {
    "no-bias-correction": "no bias correction: divide m by 1 - b1^t and v by 1 - b2^t",
    "eps-in-sqrt": "eps goes outside the square root: sqrt(vhat) + eps",
    "l2": "the weight decay was added to the gradient (Adam with L2); AdamW's is decoupled: "
          "lr lambda p, outside Adam's division, and m and v never see it",
    "decay-without-lr": "the weight decay is scaled by lr too: p - lr lambda p",
}


@pytest.mark.parametrize("shape, options", [
    pytest.param((3, 4), dict(lr=1e-2), id="defaults-no-weight-decay"),
    pytest.param((3, 4), dict(lr=1e-1, weight_decay=0.1), id="weight-decay"),
    pytest.param((5,), dict(lr=0.5, betas=(0.5, 0.75), eps=1e-3, weight_decay=0.5),
                 id="odd-betas-big-eps"),
    pytest.param((1,), dict(lr=1e-3, weight_decay=0.01), id="one-entry"),
])
def test_adamw_step(exercise, shape, options):
    """Four steps against minivit.optim.AdamW on one parameter; each step is given what the
    learner's previous step returned, as an optimizer would."""
    ex = exercise("adamw_step")
    rng = np.random.default_rng(0)
    p = rng.standard_normal(shape)
    m, v = np.zeros(shape), np.zeros(shape)
    param = Tensor(p.copy(), requires_grad=True)
    optimizer = AdamW([param], **options)
    for t in range(1, 5):
        g = rng.standard_normal(shape)
        param.grad = g.copy()
        optimizer.step()
        expected = dict(m=optimizer.state[0]["m"], v=optimizer.state[0]["v"], p=param.data)
        hints = {name: [] for name in expected}
        for mistake, message in ADAMW_MISTAKES.items():
            wrong_p, wrong_m, wrong_v = adamw_formula(p, g, m, v, t, **options, mistake=mistake)
            hints["p"].append((wrong_p, message))
            if mistake == "l2":  # the only one that reaches m and v
                hints["m"].append((wrong_m, message))
                hints["v"].append((wrong_v, message))
        b1, b2 = options.get("betas", (0.9, 0.999))
        hints["m"].append((expected["m"] / (1 - b1 ** t), "return m itself, not mhat: the next "
                                                         "step needs the uncorrected average"))
        hints["v"].append((expected["v"] / (1 - b2 ** t), "return v itself, not vhat: the next "
                                                         "step needs the uncorrected average"))
        result = ex.call("adamw_step", p, g, m, v, t, **options)
        settings = ", ".join(f"{key}={value}" for key, value in options.items())
        what = f"adamw_step(p, g, m, v, t={t}, {settings})"
        got = dict(zip(("p", "m", "v"), ex.unpack(what, result, ("p", "m", "v"))))
        for name in ("m", "v", "p"):  # m and v first: a wrong p follows from them
            ex.check(f"{name} from {what}", got[name], expected[name], hints=hints[name])
        p, m, v = got["p"], got["m"], got["v"]


def rollout_formula(attentions, identity=True, reverse=False, column=False, scale=True):
    """Attention rollout's maps written out with known mistakes (for the hints)."""
    R = None
    for attention in attentions:
        a = attention.mean(axis=1) + (np.eye(attention.shape[-1]) if identity else 0)
        a = a / a.sum(axis=-1, keepdims=True)
        R = a if R is None else (R @ a if reverse else a @ R)
    g = int(round((R.shape[-1] - 1) ** 0.5))
    maps = (R[:, 1:, 0] if column else R[:, 0, 1:]).reshape(-1, g, g)
    if not scale:
        return maps
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)


@pytest.mark.parametrize("layers, batch, heads, grid", [
    pytest.param(3, 2, 3, 3, id="three-layers"),
    pytest.param(1, 2, 2, 2, id="one-layer"),
    pytest.param(2, 1, 1, 4, id="batch1-one-head"),
    pytest.param(2, 2, 2, 1, id="one-patch-constant-map"),
])
def test_attention_rollout(exercise, layers, batch, heads, grid):
    ex = exercise("attention_rollout")
    rng = np.random.default_rng(0)
    T = 1 + grid * grid
    attentions = []
    for _ in range(layers):  # rows that sum to 1, as a softmax's
        e = np.exp(2 * rng.standard_normal((batch, heads, T, T)))
        attentions.append(e / e.sum(axis=-1, keepdims=True))
    expected = analysis.attention_rollout(copied(attentions))
    got = ex.call("attention_rollout", attentions)
    ex.check(f"attention_rollout({layers} layer{'s' * (layers > 1)} of attention "
             f"{attentions[0].shape})", got,
             expected, hints=[
                 (lambda got: np.isnan(got).any(), "a constant map (max = min) becomes all "
                                                   "zeros: do not divide by max - min = 0"),
                 (rollout_formula(attentions, identity=False), "add the identity to each "
                                                               "layer's mean attention (the "
                                                               "residual path)"),
                 (rollout_formula(attentions, reverse=True), "the layers multiply the other way: "
                                                             "R = A^_L ... A^_1, each new layer "
                                                             "on the left"),
                 (rollout_formula(attentions, column=True), "the class token's row R[:, 0, 1:] "
                                                            "(what it gathers), not its column"),
                 (rollout_formula(attentions, scale=False), "min-max scale each map to [0, 1]"),
             ])


# --- the harness: CI checks the grader itself (left out with --exercises) -----------------------

STUBS = ["linear", "gelu", "layernorm", "softmax", "attention", "cross_entropy", "patch_embed",
         "patchify", "embed_tokens", "attention_forward", "block_forward", "interpolate_pos_embed",
         "adamw_step", "attention_rollout"]


def run_grader(*options):
    """`python -m pytest --exercises ...` on this file, as a learner runs it: (exit code, output)."""
    # As on a learner's terminal: pytest prints whole messages in the short summary when it
    # sees CI (or BUILD_NUMBER) set, and truncates them to COLUMNS otherwise.
    env = {name: value for name, value in os.environ.items() if name not in ("CI", "BUILD_NUMBER")}
    result = subprocess.run([sys.executable, "-m", "pytest", str(Path(__file__)), "-q",
                             "-p", "no:cacheprovider", *options],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**env, "COLUMNS": "400"})  # summary lines not truncated
    return result.returncode, result.stdout + result.stderr


@pytest.mark.harness
def test_untouched_stubs_are_reported_not_done():
    """Every stub that still raises NotImplementedError fails every case with one line that says
    "not done yet" (a stub a learner has worked on is left out of this check)."""
    untouched = [name for name in STUBS
                 if "NotImplementedError" in (EXERCISES / f"{name}.py").read_text()]
    if not untouched:
        pytest.skip("every exercise in chapters/exercises has been worked on")
    code, output = run_grader("--exercises", "-k", " or ".join(f"test_{name}" for name in untouched))
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert code == 1 and failed, output
    for name in untouched:
        assert any(f"::test_{name}[" in line for line in failed), output
    for line in failed:
        name = line.split("::test_")[1].split("[")[0]
        assert f" - Failed: {name}: not done yet -- write " in line, line
        assert line.endswith(f", in chapters/exercises/{name}.py"), line
    assert "passed" not in output and "Traceback" not in output and "raise " not in output, output


WRONG_LAYERNORM = '''
from minivit.ops.layernorm import LayerNorm as Right

class LayerNorm(Right):
    def backward(self, grad):
        dx, dgamma, dbeta = super().backward(grad)
        return dx, dgamma, 2 * dbeta          # wrong on purpose
'''

WRONG_SOFTMAX = '''
from minivit.ops.softmax import Softmax as Right

class Softmax(Right):
    def backward(self, grad):
        return super().backward(grad)[0]      # an array, not a tuple: wrong on purpose
'''


@pytest.mark.harness
def test_wrong_solutions_get_gradchecks_message(tmp_path):
    """A wrong gradient fails with gradcheck's message (the input, the worst entry); a backward
    that returns the wrong thing says so; both without a traceback."""
    (tmp_path / "layernorm.py").write_text(WRONG_LAYERNORM)
    (tmp_path / "softmax.py").write_text(WRONG_SOFTMAX)
    code, output = run_grader(f"--exercises-dir={tmp_path}", "-k", "layernorm or softmax")
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert code == 1 and len(failed) == 3 + 4, output
    for line in failed:
        if "::test_layernorm[" in line:
            assert " - Failed: gradcheck failed for layernorm: beta has relative error" in line, line
            assert "worst entry (" in line and "analytic" in line and "numerical" in line, line
        else:
            assert " - Failed: softmax: backward must return a tuple with one gradient per input (x), " \
                   "got a ndarray: write `return (dx,)`" in line, line
    assert "Traceback" not in output and "super().backward" not in output, output


WRONG_PATCHIFY = '''
def patchify(images, patch_size):
    B, C, H, W = images.shape
    return images.reshape(B, (H // patch_size) * (W // patch_size), -1)   # wrong on purpose
'''

WRONG_ADAMW = '''
import numpy as np

def adamw_step(p, g, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    m = betas[0] * m + (1 - betas[0]) * g
    v = betas[1] * v + (1 - betas[1]) * g * g
    return p - lr * (m / (np.sqrt(v) + eps) + weight_decay * p), m, v   # no bias correction
'''

WRONG_ROLLOUT = '''
from minivit.analysis import rollout

def attention_rollout(attentions):
    return rollout(attentions)[:, 0, 1:]                 # not reshaped, not scaled: wrong on purpose
'''


@pytest.mark.harness
def test_wrong_answers_get_the_worst_entry(tmp_path):
    """A function exercise's wrong values fail with the worst entry and, for a known mistake, what
    it is; a wrong shape says so; all without a traceback."""
    (tmp_path / "patchify.py").write_text(WRONG_PATCHIFY)
    (tmp_path / "adamw_step.py").write_text(WRONG_ADAMW)
    (tmp_path / "attention_rollout.py").write_text(WRONG_ROLLOUT)
    code, output = run_grader(f"--exercises-dir={tmp_path}", "-k",
                              "patchify or adamw_step or attention_rollout")
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert code == 1 and len(failed) == 5 + 4 + 4 and "passed" not in output, output
    for line in failed:
        if "::test_patchify[" in line:
            assert " - Failed: patchify: patchify(images (" in line and " is wrong at " in line, line
            assert "; worst entry (" in line and ": yours " in line and ", expected " in line, line
        elif "::test_adamw_step[" in line:
            assert " - Failed: adamw_step: p from adamw_step(p, g, m, v, t=1, lr=" in line, line
            assert " is wrong at " in line and "; worst entry (" in line, line
        else:
            assert " - Failed: attention_rollout: attention_rollout(" in line, line
            assert " has shape (" in line and ", expected (" in line, line
    # one patch of 4 x 4: the reshape is the same mistake as the (c p1 p2) order, and says so
    assert output.count("(a reshape alone keeps the pixels in their (c h w) order") == 4, output
    assert output.count("(each patch is ordered (c p1 p2); minivit's PatchEmbed orders it") == 1, output
    assert output.count("(no bias correction: divide m by 1 - b1^t and v by 1 - b2^t)") == 4, output
    assert "Traceback" not in output and "wrong on purpose" not in output, output


@pytest.mark.harness
def test_k_attention_grades_attention_alone():
    """Chapter 3's `-k attention` grades attention.py: attention_forward and attention_rollout,
    whose names contain it, skip and say how to grade them."""
    code, output = run_grader(f"--exercises-dir={SOLUTIONS}", "-k", "attention", "-rs")
    assert code == 0 and re.search(r"\b3 passed\b", output) and "failed" not in output, output
    for name in ("attention_forward", "attention_rollout"):
        assert f"-k attention grades attention.py only; grade {name}.py with -k {name}" in output, output
    code, output = run_grader(f"--exercises-dir={SOLUTIONS}", "-k", "attention_forward")
    assert code == 0 and re.search(r"\b7 passed\b", output) and "skipped" not in output, output
