"""GPU checks that tests/ lacks: CPU-vs-GPU float32 agreement of whole models, dropout, optimizers,
clipping, checkpoints, evaluate, resize, predict, analysis, pretrained I/O, linear_eval, fancy-index
backward, GPU run determinism and exact resume, and a per-phase timing of one training step.
Each check prints PASS/FAIL and the run goes on.  Run from the project root:  python3 tools/gpu/gpu_smoke.py
(It runs on the strict CuPy stand-in too, PYTHONPATH=tests/strict_cupy: a check of its calls,
never a GPU result.)
"""
import contextlib
import io
import os
import sys
import tempfile
import time
import traceback

import numpy as np

sys.path.insert(0, os.getcwd())
import minivit  # noqa: E402
from minivit import Tensor, backend, memory, ops  # noqa: E402

CHECKS, FAILED = [], []
TMP = tempfile.mkdtemp(prefix="gpu_smoke_")
cp = backend.cupy


def check(fn):
    CHECKS.append(fn)
    return fn


def cpu(a):
    return backend.to_device(a.data if isinstance(a, Tensor) else a, "cpu")


def close(a, b, what, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(cpu(a), cpu(b), rtol=rtol, atol=atol, err_msg=what)


def sync():
    if cp is not None:
        cp.cuda.Device().synchronize()


def twins(make):
    """The same randomly initialised model on the CPU and on the GPU (float32)."""
    minivit.manual_seed(0)
    a, b = make(), make()
    rng = np.random.default_rng(0)
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        p.data = (p.data + rng.standard_normal(p.shape).astype(np.float32) * 0.05).astype(np.float32)
        q.data = p.data.copy()
    return a, b.to("gpu")


def forward_backward(model, x, y):
    model.zero_grad()
    logits = model(x)
    loss = ops.cross_entropy(logits, y, 0.1)
    loss.backward()
    return logits, loss


def compare_models(make, shape, what, rtol=2e-3, atol=2e-5):
    m_cpu, m_gpu = twins(make)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 10, shape[0])
    lc, Lc = forward_backward(m_cpu, x, y)
    lg, Lg = forward_backward(m_gpu, backend.to_device(x, "gpu"), backend.to_device(y, "gpu"))
    assert backend.is_gpu_array(lg.data), "logits not on the GPU"
    close(lc, lg, f"{what} logits")
    assert abs(Lc.item() - Lg.item()) < 1e-4 * max(1, abs(Lc.item())), (Lc.item(), Lg.item())
    worst = 0.0
    for (n, p), (_, q) in zip(m_cpu.named_parameters(), m_gpu.named_parameters()):
        close(p.grad, q.grad, f"{what} grad {n}", rtol=rtol, atol=atol)
        worst = max(worst, float(np.abs(cpu(p.grad) - cpu(q.grad)).max()))
    return f"loss cpu {Lc.item():.6f} gpu {Lg.item():.6f}, max |dgrad| {worst:.2e}"


@check
def vit_float32_cpu_vs_gpu():
    out = []
    for opts in (dict(gelu="erf"), dict(gelu="tanh", pool="gap")):
        make = lambda: minivit.ViT(image_size=32, patch_size=4, num_classes=10, dim=64, depth=2,  # noqa
                                   heads=2, mlp_dim=128, **opts)
        out.append(compare_models(make, (8, 3, 32, 32), f"ViT {opts}"))
    return "; ".join(out)


@check
def cnn_and_hybrid_float32_cpu_vs_gpu():
    from minivit.cnn import HybridViT, SmallCNN
    a = compare_models(lambda: SmallCNN(num_classes=10), (4, 3, 32, 32), "SmallCNN")
    b = compare_models(lambda: HybridViT(num_classes=10), (4, 3, 32, 32), "HybridViT")
    return f"cnn: {a}; hybrid: {b}"


@check
def dropout_on_gpu():
    x = Tensor(cp.ones((400, 250), dtype=cp.float32), requires_grad=True)
    y = ops.dropout(x, p=0.25)
    kept = cpu(y) != 0
    assert abs(kept.mean() - 0.75) < 0.01, kept.mean()
    np.testing.assert_allclose(cpu(y)[kept], 1 / 0.75, rtol=1e-6)
    y.backward(cp.ones(y.shape, dtype=cp.float32))
    np.testing.assert_array_equal(cpu(x.grad), cpu(y))
    minivit.manual_seed(3)
    a = cpu(ops.dropout(x, 0.5))
    minivit.manual_seed(3)
    b = cpu(ops.dropout(x, 0.5))
    np.testing.assert_array_equal(a, b)  # a seed fixes the GPU masks
    m = minivit.ViT.from_config("C-micro/4", num_classes=3, dropout=0.5).to("gpu")
    m.head.weight.data[:] = 1.0
    img = cp.asarray(np.random.default_rng(0).random((2, 3, 32, 32), np.float32))
    m.eval()
    np.testing.assert_array_equal(cpu(m(img)), cpu(m(img)))
    m.train()
    assert not np.allclose(cpu(m(img)), cpu(m(img)))
    return f"kept {kept.mean():.4f}"


@check
def optimizers_and_clipping_cpu_vs_gpu():
    from minivit.optim import SGD, AdamW, clip_grad_norm
    rng = np.random.default_rng(0)
    shapes = [(5, 7), (7,), (1, 3, 4)]
    for Opt, kw in ((AdamW, dict(weight_decay=0.05)), (SGD, dict(momentum=0.9, weight_decay=0.01))):
        ps = {d: [Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
                  for s in shapes] for d in ("cpu",)}
        ps["gpu"] = [Tensor(p.data.copy(), requires_grad=True).to("gpu") for p in ps["cpu"]]
        opts = {d: Opt(ps[d], lr=1e-2, **kw) for d in ps}
        for step in range(3):
            grads = [rng.standard_normal(s).astype(np.float32) * 3 for s in shapes]
            norms = {}
            for d in ps:
                for p, g in zip(ps[d], grads):
                    p.grad = backend.to_device(g.copy(), d)  # a fresh copy for each optimizer
                norms[d] = clip_grad_norm(ps[d], 1.0)
                opts[d].step()
            assert abs(norms["cpu"] - norms["gpu"]) < 1e-4 * norms["cpu"], norms
        for p, q in zip(ps["cpu"], ps["gpu"]):
            close(p, q, f"{Opt.__name__} params", rtol=1e-5, atol=1e-6)
            assert q.data.dtype == np.float32, f"cupy.fuse gave {q.data.dtype}, not float32"
    # the clipping folded into the fused update (the training loop's path) against the above
    ps = [Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True).to("gpu")
          for s in shapes]
    qs = [Tensor(p.data.copy(), requires_grad=True) for p in ps]
    folded, plain = AdamW(ps, lr=1e-2, clip_norm=1.0), AdamW(qs, lr=1e-2)
    for step in range(3):
        grads = [backend.to_device(rng.standard_normal(s).astype(np.float32) * 3, "gpu") for s in shapes]
        for p, q, g in zip(ps, qs, grads):
            p.grad, q.grad = g.copy(), g.copy()
        clip_grad_norm(qs, 1.0)
        folded.step(), plain.step()
    for p, q in zip(ps, qs):
        close(p, q, "AdamW(clip_norm) vs clip_grad_norm + AdamW", rtol=1e-5, atol=1e-6)
        assert p.data.dtype == np.float32
    return "AdamW and SGD agree after 3 clipped steps; the folded clipping too; float32 kept"


@check
def checkpoint_round_trip_on_gpu():
    from minivit.optim import AdamW, param_groups
    from minivit.checkpoint import read_training
    from minivit.train import TrainConfig, save_checkpoint
    minivit.manual_seed(0)
    m = minivit.ViT.from_config("C-micro/4", num_classes=10).to("gpu")
    opt = AdamW(param_groups(m, 0.05), lr=1e-3)
    x = cp.asarray(np.random.default_rng(0).random((4, 3, 32, 32), np.float32))
    forward_backward(m, x, cp.asarray([1, 2, 3, 4]))
    opt.step()
    path = os.path.join(TMP, "ck.npz")
    row = dict(epoch=1, train_loss=2.0, train_accuracy=0.3, test_loss=2.1, test_accuracy=0.5)
    save_checkpoint(path, m, opt, TrainConfig(device="gpu"), 0.5, [row])
    minivit.manual_seed(1)
    m2 = minivit.ViT.from_config("C-micro/4", num_classes=10).to("gpu")
    opt2 = AdamW(param_groups(m2, 0.05), lr=1e-3)
    record = read_training(path)
    m2.load_state_dict(record.model)
    opt2.load_state_dict(record.optimizer)
    epoch, best = record.epoch, record.best_accuracy
    assert (epoch, best) == (1, 0.5) and opt2.steps == 1 and m2.device == "gpu"
    for (n, p), (_, q) in zip(m.named_parameters(), m2.named_parameters()):
        assert backend.is_gpu_array(q.data), n
        np.testing.assert_array_equal(cpu(p), cpu(q), err_msg=n)
    for s, t in zip(opt.state, opt2.state):
        for k in s:
            assert backend.is_gpu_array(t[k])
            np.testing.assert_array_equal(cpu(s[k]), cpu(t[k]))
    return "model + AdamW state equal after save/load on the GPU"


@check
def evaluate_resize_predict_cpu_vs_gpu():
    from minivit import parallel
    from minivit.data import resize
    from minivit.evaluation import evaluate
    m_cpu, m_gpu = twins(lambda: minivit.ViT(image_size=16, patch_size=4, num_classes=10, dim=32,
                                             depth=2, heads=2, mlp_dim=64))
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (300, 3, 32, 32)).astype(np.uint8)
    labels = rng.integers(0, 10, 300)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    a = evaluate(m_cpu, images, labels, mean, std, threads=1)
    b = evaluate(m_gpu, backend.to_device(images, "gpu"), backend.to_device(labels, "gpu"), mean, std,
                 threads=16)
    assert abs(a[0] - b[0]) < 1e-4 and isinstance(b[2], np.ndarray), (a[:2], b[:2])
    agree = float((a[2] == b[2]).mean())
    assert agree > 0.99, agree
    x = rng.standard_normal((5, 3, 32, 32)).astype(np.float32)
    close(resize(x, 16), resize(cp.asarray(x), 16), "resize 32->16", rtol=1e-5, atol=1e-6)
    close(resize(x, 48), resize(cp.asarray(x), 48), "resize 32->48", rtol=1e-5, atol=1e-6)
    xg = cp.asarray(resize(x, 16))
    with minivit.no_grad():
        direct = m_gpu(xg).data
    p = parallel.predict(m_gpu, xg, threads=16)
    assert backend.is_gpu_array(p)
    close(direct, p, "predict")
    return f"loss cpu {a[0]:.5f} gpu {b[0]:.5f}, acc {a[1]:.3f}/{b[1]:.3f}, predictions agree {agree:.3f}"


@check
def analysis_pretrained_linear_eval_on_gpu():
    from minivit import analysis, linear_eval
    from minivit.pretrained import from_pretrained, save_pretrained
    m_cpu, m_gpu = twins(lambda: minivit.ViT(image_size=16, patch_size=4, num_classes=10, dim=32,
                                             depth=2, heads=2, mlp_dim=64))
    x = np.random.default_rng(3).standard_normal((6, 3, 16, 16)).astype(np.float32)
    for a, b in zip(analysis.attention_weights(m_cpu, x), analysis.attention_weights(m_gpu, x)):
        assert isinstance(b, np.ndarray)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    analysis.embedding_filters(m_gpu.patch_embed.proj.weight.data, 4, 3)
    analysis.position_similarity(m_gpu.pos_embed.data, 4)
    for layout, suffix in (("official", ".npz"), ("timm", ".safetensors")):
        path = os.path.join(TMP, "w" + suffix)
        save_pretrained(m_gpu, path, layout=layout)  # from GPU arrays
        back = from_pretrained(path).to("gpu")       # (timm files are read as gelu='erf')
        for (n, p), (_, q) in zip(m_gpu.named_parameters(), back.named_parameters()):
            np.testing.assert_array_equal(cpu(p), cpu(q), err_msg=f"{layout} {n}")
        if layout == "official":
            with minivit.no_grad():
                close(m_gpu(cp.asarray(x)), back(cp.asarray(x)), "official round trip",
                      rtol=1e-6, atol=1e-7)
    u8 = np.random.default_rng(4).integers(0, 256, (10, 3, 16, 16)).astype(np.uint8)
    fc = linear_eval.features(m_cpu, u8, 4, (0.5,) * 3, (0.25,) * 3)
    fg = linear_eval.features(m_gpu, u8, 4, (0.5,) * 3, (0.25,) * 3)
    np.testing.assert_allclose(fc, fg, rtol=1e-4, atol=1e-5)
    problems = []
    for name, call in (("plot_rollout", lambda: analysis.plot_rollout(
            cp.asarray(u8[:2]), np.zeros((2, 4, 4)), os.path.join(TMP, "r.png"))),
            ("upsample", lambda: analysis.upsample(cp.zeros((2, 4, 4)), 16))):
        try:
            call()
        except TypeError as error:
            problems.append(f"{name}(cupy) -> TypeError ({str(error)[:40]}...)")
    return "attention, filters, save/from_pretrained, features OK" + (
        "; known: " + "; ".join(problems) if problems else "")


@check
def fancy_index_backward_on_gpu():
    for dt in (np.float32, np.float64):
        x = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(dt)
        idx = (slice(None), [0, 2, 0, 0])
        grads = []
        for d in ("cpu", "gpu"):
            t = Tensor(x, requires_grad=True).to(d)
            y = t[idx]
            y.backward(backend.to_device(np.ones(y.shape, dt), d))
            grads.append(cpu(t.grad))
        np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)
        assert grads[1][0, 0, 0] == 3
    return "cupy.add.at sums duplicates"


def tiny_config(**kw):
    from minivit.train import TrainConfig
    return TrainConfig(**{**dict(dataset="digits", model="C-micro/4", dim=16, depth=1, heads=2,
                                 mlp_dim=32, patch_size=2, epochs=3, batch_size=128, lr=3e-3,
                                 warmup_epochs=1, augment="crop", dropout=0.1, device="gpu"), **kw})


@check
def gpu_run_is_deterministic_and_resumes_exactly():
    from minivit import train as T
    from minivit.checkpoint import load_arrays
    cfg = tiny_config()
    quiet = contextlib.redirect_stdout(io.StringIO())  # reusable: keeps the epoch lines out of the log
    with quiet:
        T.train(cfg, os.path.join(TMP, "a"))
        T.train(cfg, os.path.join(TMP, "b"))
    real, calls = T.evaluate, []

    per_epoch = 2 if cfg.validation else 1  # the test set, and the validation split

    def stop_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == per_epoch + 1:  # the first evaluation of epoch 2, after its checkpoint
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    T.evaluate = stop_in_epoch_2
    try:
        with quiet:
            T.train(cfg, os.path.join(TMP, "c"))
    except KeyboardInterrupt:
        pass
    finally:
        T.evaluate = real
    with quiet:
        T.train(cfg, os.path.join(TMP, "c"), resume=True)
    arrays = {d: load_arrays(os.path.join(TMP, d, "last.npz")) for d in "abc"}
    keys = [k for k in arrays["a"] if k.startswith(("model/", "optimizer/"))]
    same = [k for k in keys if np.array_equal(arrays["a"][k], arrays["b"][k])]
    resumed = [k for k in keys if np.array_equal(arrays["a"][k], arrays["c"][k])]
    msg = f"repeat: {len(same)}/{len(keys)} arrays bit-equal; resume: {len(resumed)}/{len(keys)}"
    assert len(same) == len(keys) and len(resumed) == len(keys), msg
    return msg


@check
def step_time_breakdown_gpu_preset():
    """The gpu preset's model (C-S/4 at D 384, 12 heads, MLP 768), batch 128: where a step goes."""
    from minivit.optim import AdamW, clip_grad_norm, param_groups
    minivit.manual_seed(0)
    m = minivit.ViT(image_size=32, patch_size=4, num_classes=10, dim=384, depth=7, heads=12,
                    mlp_dim=768).to("gpu")
    opt = AdamW(param_groups(m, 0.05), lr=1e-4)
    x = cp.asarray(np.random.default_rng(0).standard_normal((128, 3, 32, 32)).astype(np.float32))
    y = cp.asarray(np.random.default_rng(1).integers(0, 10, 128))
    t = {"fwd+bwd+item": 0.0, "clip_grad_norm": 0.0, "adamw.step": 0.0, "argmax+int": 0.0}
    for i in range(13):
        if i == 3:
            t = dict.fromkeys(t, 0.0)
        opt.zero_grad()
        sync()
        s = time.perf_counter()
        logits, loss = forward_backward(m, x, y)
        loss.item()
        sync()
        t["fwd+bwd+item"] += time.perf_counter() - s
        s = time.perf_counter()
        clip_grad_norm(m.parameters(), 1.0)
        sync()
        t["clip_grad_norm"] += time.perf_counter() - s
        s = time.perf_counter()
        opt.step()
        sync()
        t["adamw.step"] += time.perf_counter() - s
        s = time.perf_counter()
        int((logits.data.argmax(axis=1) == y).sum())
        t["argmax+int"] += time.perf_counter() - s
    total = sum(t.values())
    return " | ".join(f"{k} {1e3 * v / 10:.2f} ms" for k, v in t.items()) + \
        f" | step {1e3 * total / 10:.1f} ms = {128 * 10 / total:.0f} img/s; " \
        f"pool {memory.peak_memory_mib('gpu'):.0f} MiB"


def main():
    print(f"python {sys.version.split()[0]} numpy {np.__version__} cupy "
          f"{getattr(cp, '__version__', None)} gpu_available {minivit.gpu_available()}")
    if not minivit.gpu_available():
        print("FAIL no GPU visible to minivit")
        return 1
    only = set(sys.argv[1:])
    for fn in CHECKS:
        if only and fn.__name__ not in only:
            continue
        start = time.perf_counter()
        try:
            detail = fn()
            print(f"PASS {fn.__name__} ({time.perf_counter() - start:.1f}s): {detail}", flush=True)
        except Exception as error:  # noqa: BLE001  (report every check)
            FAILED.append(fn.__name__)
            print(f"FAIL {fn.__name__} ({time.perf_counter() - start:.1f}s): "
                  f"{type(error).__name__}: {str(error)[:500]}", flush=True)
            traceback.print_exc(limit=6)
    print(f"smoke: {len(FAILED)} failed: {FAILED}" if FAILED else "smoke: all passed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
