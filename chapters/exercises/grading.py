"""The grader of the exercises: every exercise's cases and the checks each case makes, in one
place, shared by `python -m pytest --exercises` (tests/test_exercises.py) and the chapters'
in-place check (check.py in this folder: `check("layernorm", LayerNorm)` in a cell).
Not an exercise: nothing to write here.

CASES[NAME] lists the cases of the exercise NAME (the file NAME.py in this folder), each a Case
with an id that says what it is about ('tokens', 'batch1-one-token', ...: pytest's test ids) and
its arguments. run(NAME, case, source) grades one case of the class or functions that `source`
gives, and stops at the first thing that is wrong by raising Failed, with a single line that
says what (sometimes a hint on a second line); it returns None when the case passes. A source
says where the graded objects come from: FileSource(path) imports an exercise file (what
`pytest --exercises` grades), Given(name, objects, where) takes objects as they are (what a
chapter's cell passes to check()).

A backward-pass exercise (a minivit Function with its forward given) is graded in four steps:
  1. the forward still agrees with minivit's op (the exercise is the backward, not the forward);
  2. backward is written: it does not raise NotImplementedError   -> "not done yet";
  3. it returns a tuple with one gradient per input, each of its input's shape;
  4. gradcheck: in float64, central differences of the forward agree with backward
     -> gradcheck's message, naming the input and the worst entry;
     and the gradients equal those of minivit's own op.
A function on NumPy arrays (patchify, embed_tokens, attention_forward, block_forward,
interpolate_pos_embed, adamw_step, attention_rollout) is graded against the minivit code it
mirrors, in the same spirit:
  1. the function is written: it does not raise NotImplementedError   -> "not done yet";
  2. it returns what was asked: a NumPy array (or a tuple of them) of the expected shape and dtype;
  3. its values agree with minivit's (exactly, for a function that only moves entries)
     -> how many entries are wrong, the worst one and where it is, yours against the expected
     value, and, when the answer is a known mistake (a transposed layout, a missing term), which.
"""
import importlib.util
from pathlib import Path
from typing import NamedTuple

import einops
import numpy as np

from minivit import GradcheckError, Tensor, analysis, backend, gradcheck, ops
from minivit.interpolate import interpolation_matrix
from minivit.model import Block, PatchEmbed, ViT, resize_pos_embed
from minivit.nn import Module
from minivit.optim import AdamW

PATCHES = "b c (h p1) (w p2) -> b (h w) (p1 p2 c)"


class Failed(Exception):
    """A case failed: str(failure) is the message for the learner. `not_done`: the reason is that
    a NotImplementedError is still there."""

    def __init__(self, message, not_done=False):
        super().__init__(message)
        self.not_done = not_done


def fail(message, not_done=False):
    """Stop grading this case with just `message`: no traceback for the learner to dig through."""
    raise Failed(message, not_done)


def shown(path):
    """A path as the learner typed it: relative to the current folder when inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- where the graded objects come from ---------------------------------------------------------

_modules = {}


class FileSource:
    """The exercise file at `path`, imported once per process."""

    def __init__(self, path):
        self.path = Path(path)
        self.where = shown(self.path)

    def get(self, attribute, kind="class"):
        """The class (or function: `kind`) `attribute` that the file defines."""
        path = self.path
        if not path.exists():
            fail(f"no file {shown(path)}")
        if path not in _modules:
            spec = importlib.util.spec_from_file_location(f"exercise_{len(_modules)}_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _modules[path] = module
        if not hasattr(_modules[path], attribute):
            fail(f"{shown(path)} defines no {kind} {attribute}")
        return getattr(_modules[path], attribute)


class Given:
    """Objects handed over as they are, {name: object} (check() in a chapter's cell); `where` says
    where they were written, for the messages ('this notebook', a file)."""

    def __init__(self, exercise, objects, where):
        self.exercise, self.objects, self.where = exercise, dict(objects), where

    def get(self, attribute, kind="class"):
        if attribute not in self.objects:
            names = NAMES[self.exercise]
            fail(f"{self.exercise}: check({self.exercise!r}, ...) was given no {kind} {attribute}: "
                 f"pass {' and '.join(names)}")
        return self.objects[attribute]


# --- the registry of exercises ------------------------------------------------------------------

class Case(NamedTuple):
    """One case of an exercise: its id (as in the test ids) and the arguments of its grader."""
    id: str
    args: dict


CASES = {}    # exercise name -> [Case]
NAMES = {}    # exercise name -> the class or functions its file defines that are graded
KINDS = {}    # exercise name -> "class" or "function"
_RUNNERS = {}


def exercise(name, names, kind, cases):
    """Register the grader of one case of exercise `name`: a function (source, **case.args)."""

    def register(grade_case):
        CASES[name] = [Case(case_id, args) for case_id, args in cases]
        NAMES[name], KINDS[name], _RUNNERS[name] = tuple(names), kind, grade_case
        return grade_case

    return register


def run(name, case, source):
    """Grade one case of exercise `name` on the objects that `source` gives; raise Failed at the
    first thing that is wrong, return None when the case passes. minivit's initialisation draws
    from a generator of the case's own, seeded 0: a case grades the same whatever ran before it,
    and leaves the caller's random state (a chapter's) as it was."""
    with backend.use_generator(0):
        _RUNNERS[name](source, **case.args)


# --- the grader of the backward passes ----------------------------------------------------------

def random_inputs(shapes, seed=0):
    """{name: float64 Tensor of that shape needing a gradient}, standard normal entries."""
    rng = np.random.default_rng(seed)
    return {name: Tensor(rng.standard_normal(shape), requires_grad=True)
            for name, shape in shapes.items()}


def grade_backward(source, name, class_name, reference, shapes, options):
    """Grade the Function `class_name` of exercise `name`, built with `options`, on inputs of
    `shapes` ({name: shape}), against `reference(*inputs, **options)`, minivit's own op."""
    Op = source.get(class_name)
    inputs = random_inputs(shapes)
    copies = random_inputs(shapes)  # the same values, for minivit's op

    # 1. the forward is given: it must still agree with minivit's op
    out, expected = Op(**options)(*inputs.values()), reference(*copies.values(), **options)
    if out.shape != expected.shape or not np.allclose(out.data, expected.data,
                                                      rtol=1e-10, atol=1e-12):
        fail(f"{name}: the forward of {class_name} no longer agrees with minivit's "
             f"(the exercise is the backward: restore the forward in {source.where})")

    # 2. the backward is written
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    try:
        grads, not_done = out.creator.backward(upstream), None
    except NotImplementedError as error:
        grads, not_done = None, str(error).removeprefix("exercise not done yet: ")
    if not_done is not None:  # failed out here, not in `except`: no chained traceback
        fail(f"{name}: not done yet -- {not_done}, in {source.where}", not_done=True)

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
    """One exercise of functions, being graded: call its functions, check what they return."""

    def __init__(self, name, source):
        self.name, self.source = name, source

    def call(self, function_name, *args, **kwargs):
        """function_name(*args, **kwargs) from the exercise, on copies of the arguments;
        a NotImplementedError reads "not done yet"."""
        function = self.source.get(function_name, kind="function")
        try:
            result, not_done = function(*copied(args), **copied(kwargs)), None
        except NotImplementedError as error:
            result, not_done = None, str(error).removeprefix("exercise not done yet: ")
        if not_done is not None:  # failed out here, not in `except`: no chained traceback
            fail(f"{self.name}: not done yet -- {not_done}, in {self.source.where}", not_done=True)
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


# --- the backward passes, each on several shapes and the edge cases ----------------------------
# The ids say what each case is about; `pytest --exercises -k` picks an exercise (or a case:
# -k "layernorm and batch1").

@exercise("linear", ["Linear"], "class", [
    ("tokens", dict(shapes=dict(x=(2, 5, 4), weight=(4, 3), bias=(3,)), options={})),
    ("batch1-one-token-one-output", dict(shapes=dict(x=(1, 1, 4), weight=(4, 1), bias=(1,)),
                                         options={})),
    ("rows-no-bias", dict(shapes=dict(x=(3, 4), weight=(4, 2)), options={})),
])
def grade_linear(source, shapes, options):
    grade_backward(source, "linear", "Linear", ops.linear, shapes, options)


@exercise("gelu", ["GELU"], "class", [
    ("erf", dict(shapes=dict(x=(2, 5, 4)), options=dict(approximate="erf"))),
    ("erf-one-entry", dict(shapes=dict(x=(1,)), options=dict(approximate="erf"))),
    ("tanh", dict(shapes=dict(x=(2, 5, 4)), options=dict(approximate="tanh"))),
])
def grade_gelu(source, shapes, options):
    grade_backward(source, "gelu", "GELU", lambda x, approximate: ops.gelu(x, approximate),
                   shapes, options)


@exercise("layernorm", ["LayerNorm"], "class", [
    ("tokens", dict(shapes=dict(x=(2, 5, 4), gamma=(4,), beta=(4,)), options=dict(eps=1e-6))),
    ("batch1-one-token", dict(shapes=dict(x=(1, 1, 2), gamma=(2,), beta=(2,)),
                              options=dict(eps=1e-6))),
    ("rows-big-eps", dict(shapes=dict(x=(3, 7), gamma=(7,), beta=(7,)), options=dict(eps=1e-2))),
])
def grade_layernorm(source, shapes, options):
    grade_backward(source, "layernorm", "LayerNorm", ops.layernorm, shapes, options)


@exercise("softmax", ["Softmax"], "class", [
    ("last-axis", dict(shapes=dict(x=(2, 3, 5)), options=dict(axis=-1))),
    ("one-entry", dict(shapes=dict(x=(1, 1)), options=dict(axis=-1))),
    ("middle-axis-of-length-1", dict(shapes=dict(x=(4, 1, 3)), options=dict(axis=-1))),
    ("axis0", dict(shapes=dict(x=(3, 4)), options=dict(axis=0))),
])
def grade_softmax(source, shapes, options):
    grade_backward(source, "softmax", "Softmax", lambda x, axis: ops.softmax(x, axis), shapes, options)


@exercise("attention", ["Attention"], "class", [
    ("two-heads", dict(shapes=dict(qkv=(2, 5, 12)), options=dict(heads=2))),
    ("batch1-one-token", dict(shapes=dict(qkv=(1, 1, 6)), options=dict(heads=2))),
    ("one-head", dict(shapes=dict(qkv=(2, 3, 9)), options=dict(heads=1))),
])
def grade_attention(source, shapes, options):
    grade_backward(source, "attention", "Attention", lambda qkv, heads: ops.attention(qkv, heads),
                   shapes, options)


@exercise("cross_entropy", ["CrossEntropy"], "class", [
    ("plain", dict(shapes=dict(logits=(3, 4)),
                   options=dict(labels=np.array([2, 0, 1]), label_smoothing=0.0))),
    ("label-smoothing", dict(shapes=dict(logits=(3, 4)),
                             options=dict(labels=np.array([2, 0, 1]), label_smoothing=0.1))),
    ("batch1", dict(shapes=dict(logits=(1, 5)), options=dict(labels=np.array([4]), label_smoothing=0.0))),
])
def grade_cross_entropy(source, shapes, options):
    grade_backward(source, "cross_entropy", "CrossEntropy", ops.cross_entropy, shapes, options)


def patch_embedding(images, weight, bias, patch_size):
    """minivit's way: two ops, rearrange then linear."""
    patches = ops.rearrange(images, PATCHES, p1=patch_size, p2=patch_size)
    return ops.linear(patches, weight, bias)


@exercise("patch_embed", ["PatchEmbedding"], "class", [
    ("rgb-six-patches", dict(shapes=dict(images=(2, 3, 4, 6), weight=(12, 5), bias=(5,)),
                             options=dict(patch_size=2))),
    ("batch1-one-patch-one-channel", dict(shapes=dict(images=(1, 1, 2, 2), weight=(4, 1), bias=(1,)),
                                          options=dict(patch_size=2))),
    ("not-square", dict(shapes=dict(images=(1, 2, 8, 4), weight=(32, 3), bias=(3,)),
                        options=dict(patch_size=4))),
])
def grade_patch_embed(source, shapes, options):
    grade_backward(source, "patch_embed", "PatchEmbedding", patch_embedding, shapes, options)


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


@exercise("patchify", ["patchify", "unpatchify"], "function", [
    ("rgb-four-patches", dict(shape=(2, 3, 4, 4), patch_size=2)),
    ("not-square", dict(shape=(2, 3, 4, 6), patch_size=2)),
    ("batch1-tall", dict(shape=(1, 2, 8, 4), patch_size=4)),
    ("one-pixel-patches", dict(shape=(2, 3, 3, 3), patch_size=1)),
    ("one-patch", dict(shape=(2, 3, 4, 4), patch_size=4)),
])
def grade_patchify(source, shape, patch_size):
    ex = Graded("patchify", source)
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


@exercise("embed_tokens", ["embed_tokens"], "function", [
    ("four-patches", dict(batch=2, image_size=4, patch_size=2, channels=3, dim=5)),
    ("batch1-one-patch", dict(batch=1, image_size=2, patch_size=2, channels=1, dim=3)),
    ("width1-nine-patches", dict(batch=3, image_size=6, patch_size=2, channels=2, dim=1)),
])
def grade_embed_tokens(source, batch, image_size, patch_size, channels, dim):
    """Against ViT.forward_features: with no blocks, its final norm sees z0 (caught by Capture)."""
    ex = Graded("embed_tokens", source)
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


@exercise("attention_forward", ["attention_forward"], "function", [
    ("two-heads", dict(shape=(2, 5, 12), heads=2, mask=None)),
    ("one-head", dict(shape=(2, 3, 9), heads=1, mask=None)),
    ("batch1-one-token", dict(shape=(1, 1, 6), heads=2, mask=None)),
    ("causal-mask-NN", dict(shape=(2, 4, 12), heads=2, mask=causal(4))),
    ("mask-per-image-BNN", dict(shape=(2, 5, 18), heads=3, mask=random_mask(2, 5))),
    ("one-token-mask", dict(shape=(1, 1, 6), heads=1, mask=np.ones((1, 1), dtype=bool))),
    ("mask-all-true", dict(shape=(2, 4, 12), heads=2, mask=np.ones((4, 4), dtype=bool))),
])
def grade_attention_forward(source, shape, heads, mask):
    """Without a mask (or with one that masks nothing) against minivit's fused op; with one,
    against the formula written out."""
    ex = Graded("attention_forward", source)
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


@exercise("block_forward", ["block_forward"], "function", [
    ("erf", dict(shape=(2, 5, 8), heads=2, mlp_dim=12, approximate="erf", eps=1e-6)),
    ("tanh-approximation", dict(shape=(2, 5, 8), heads=2, mlp_dim=12, approximate="tanh", eps=1e-6)),
    ("one-head-big-eps", dict(shape=(2, 3, 6), heads=1, mlp_dim=4, approximate="erf", eps=1e-2)),
    ("batch1-one-token", dict(shape=(1, 1, 4), heads=2, mlp_dim=8, approximate="erf", eps=1e-6)),
])
def grade_block_forward(source, shape, heads, mlp_dim, approximate, eps):
    """Against minivit.model.Block in float64 and eval mode, every weight random (so that a
    missing bias or LayerNorm scale shows)."""
    ex = Graded("block_forward", source)
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


@exercise("interpolate_pos_embed", ["interpolate_pos_embed"], "function", [
    ("up-3-to-8", dict(old=3, new=8, dim=4)),
    ("down-5-to-3", dict(old=5, new=3, dim=4)),
    ("same-grid", dict(old=4, new=4, dim=3)),
    ("down-to-one-cell", dict(old=3, new=1, dim=2)),
    ("up-from-one-cell", dict(old=1, new=3, dim=2)),
])
def grade_interpolate_pos_embed(source, old, new, dim):
    ex = Graded("interpolate_pos_embed", source)
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


@exercise("adamw_step", ["adamw_step"], "function", [
    ("defaults-no-weight-decay", dict(shape=(3, 4), options=dict(lr=1e-2))),
    ("weight-decay", dict(shape=(3, 4), options=dict(lr=1e-1, weight_decay=0.1))),
    ("odd-betas-big-eps", dict(shape=(5,), options=dict(lr=0.5, betas=(0.5, 0.75), eps=1e-3,
                                                        weight_decay=0.5))),
    ("one-entry", dict(shape=(1,), options=dict(lr=1e-3, weight_decay=0.01))),
])
def grade_adamw_step(source, shape, options):
    """Four steps against minivit.optim.AdamW on one parameter; each step is given what the
    learner's previous step returned, as an optimizer would."""
    ex = Graded("adamw_step", source)
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


@exercise("attention_rollout", ["attention_rollout"], "function", [
    ("three-layers", dict(layers=3, batch=2, heads=3, grid=3)),
    ("one-layer", dict(layers=1, batch=2, heads=2, grid=2)),
    ("batch1-one-head", dict(layers=2, batch=1, heads=1, grid=4)),
    ("one-patch-constant-map", dict(layers=2, batch=2, heads=2, grid=1)),
])
def grade_attention_rollout(source, layers, batch, heads, grid):
    ex = Graded("attention_rollout", source)
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


EXERCISES = list(CASES)  # every exercise, in the order of the book
