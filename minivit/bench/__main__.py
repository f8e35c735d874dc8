"""How fast is minivit?  python -m minivit.bench [--model C-Ti/4] [--batch-size 128] [--json]

Measures images per second of a training step (forward, backward, clipping, AdamW) and of a
forward pass,
on NumPy (and CuPy with --device gpu); on the CPU each batch is split between --threads threads
(minivit.parallel). When PyTorch is installed, the same architecture runs in
PyTorch eager in the same process, with the same threads, batch, dtype and optimizer; the two
alternate step by step so that both see the same machine, and the medians are compared.
Also printed: model FLOPs per image, the machine's measured float32 matmul peak, the fraction of
it each reached (model FLOP utilisation), and peak memory. --profile breaks a step down by op.

--count (with --device gpu on the strict CuPy stand-in of the tests: PYTHONPATH=tests/strict_cupy)
counts what one training step and one forward pass ask of a GPU: array operations (an upper
bound on kernel launches), device-to-host syncs and host-to-device copies, by line of minivit.
Those are counts of the code's demands on a device, made on NumPy: not a GPU measurement.
"""
import argparse
import json
import time
from collections import defaultdict

import numpy as np

from minivit import backend, cli, distributed, memory, ops, parallel
from minivit.cost import matmul_peak, model_flops, synchronize
from minivit.engine import Function
from minivit.errors import ConfigError
from minivit.evaluation import evaluate
from minivit.model import CONFIGS, ViT
from minivit.optim import AdamW, param_groups


class Minivit:
    """A minivit model, its optimizer and a batch, with timed steps."""

    def __init__(self, config, batch_size, device, threads, world=None):
        self.threads = threads  # the batch is split between them (minivit.parallel)
        self.world = world or distributed.World()  # and between processes, under mpiexec
        self.model = ViT(**config).to(device)
        self.optimizer = AdamW(param_groups(self.model, 0.05), lr=1e-4, clip_norm=1.0)
        rng = np.random.default_rng(0)
        self.xp = backend.cupy if device == "gpu" else np
        size, channels = config["image_size"], config.get("in_channels", 3)
        self.images = backend.to_device(rng.random((batch_size, channels, size, size), np.float32),
                                        device)
        self.labels = backend.to_device(rng.integers(0, config["num_classes"], batch_size), device)
        self.pixels = (self.images * 255).astype(np.uint8)  # the batch as a data set stores it

    def train_step(self):
        self.optimizer.zero_grad()
        parallel.loss_and_gradients(self.model, ops.cross_entropy, self.images, self.labels,
                                    self.threads, self.world)
        self.optimizer.step()  # clipping at norm 1 inside
        synchronize(self.xp)

    def forward(self):
        parallel.predict(self.model, self.images[self.world.rows(len(self.images))], self.threads)
        synchronize(self.xp)

    def evaluation_batch(self):
        """minivit.evaluation.evaluate on one batch of uint8 images, as after every epoch."""
        evaluate(self.model, self.pixels, self.labels, (0.5,) * 3, (0.25,) * 3, self.threads,
                 batch_size=len(self.pixels), world=self.world)


class Torch:
    """The same model in PyTorch eager, with the same weights, batch and optimizer."""

    def __init__(self, ours, device, threads):
        import torch
        from minivit.bench.torch_twin import torch_twin
        if device == "gpu" and not torch.cuda.is_available():
            raise ImportError("PyTorch sees no CUDA device")
        self.torch = torch
        torch.set_num_threads(threads)
        self.device = "cuda" if device == "gpu" else "cpu"
        self.model = torch_twin(ours.model.to("cpu")).to(self.device)
        ours.model.to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.05)
        self.images = torch.as_tensor(backend.to_device(ours.images, "cpu"), device=self.device)
        self.labels = torch.as_tensor(backend.to_device(ours.labels, "cpu"), device=self.device)

    def train_step(self):
        loss = self.torch.nn.functional.cross_entropy(self.model(self.images), self.labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.sync()

    def forward(self):
        with self.torch.no_grad():
            self.model(self.images)
        self.sync()

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()


def time_alternating(runners, method, steps, warmup):
    """Median seconds per call of `method` for each runner, the runners taking turns."""
    for _ in range(warmup):
        for runner in runners:
            getattr(runner, method)()
    times = [[] for _ in runners]
    for _ in range(steps):
        for runner, log in zip(runners, times):
            start = time.perf_counter()
            getattr(runner, method)()
            log.append(time.perf_counter() - start)
    return [float(np.median(log)) for log in times]


def profile_step(runner, steps=3):
    """Seconds per step spent in each op's forward and backward (a Function subclass each), the
    step run in one thread so that each op is timed alone."""
    totals = defaultdict(float)
    originals = {}

    def timed(cls, name, method):
        def wrapper(self, *args):
            start = time.perf_counter()
            result = method(self, *args)
            synchronize(runner.xp)
            totals[f"{cls.__name__}.{name}"] += time.perf_counter() - start
            return result
        return wrapper

    classes, stack = [], list(Function.__subclasses__())
    while stack:
        cls = stack.pop()
        classes.append(cls)
        stack.extend(cls.__subclasses__())
    for cls in classes:
        for name in ("forward", "backward"):
            if name in vars(cls):
                originals[(cls, name)] = vars(cls)[name]
                setattr(cls, name, timed(cls, name, vars(cls)[name]))
    threads, runner.threads = runner.threads, 1
    try:
        runner.train_step()  # untimed: one step to settle memory in this one thread
        totals.clear()
        start = time.perf_counter()
        for _ in range(steps):
            runner.train_step()
        total = (time.perf_counter() - start) / steps
    finally:
        runner.threads = threads
        for (cls, name), method in originals.items():
            setattr(cls, name, method)
    return total, {k: v / steps for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def count(runner):
    """{'train step': ..., 'forward': ..., 'evaluation': ...}: the stand-in's totals for one call
    of each (after one untimed call, which fills the caches), and the lines of minivit that ask
    most of the device. (The whole step of minivit.train, batch loading and augmentation
    included, is counted and pinned by tests/test_gpu_budgets.py.)"""
    ledger = getattr(backend.cupy, "counts", None)
    if runner.xp is np or ledger is None:
        raise ConfigError("--count needs --device gpu on the strict CuPy stand-in: "
                          "PYTHONPATH=tests/strict_cupy python -m minivit.bench --count --device gpu")
    result = {}
    for name, method in (("train step", runner.train_step), ("forward", runner.forward),
                         ("evaluation", runner.evaluation_batch)):
        method()
        ledger.reset()
        method()
        result[name] = dict(**ledger.totals(), top_ops=ledger.ops.most_common(8),
                            syncs_at=dict(ledger.syncs), copies_at=dict(ledger.copies))
    return result


def print_counts(result, args):
    if args.json:
        print(json.dumps(result, indent=2))
        return result
    print(f"{args.model}, batch {args.batch_size}, on the strict CuPy stand-in (NumPy underneath; "
          "counts of what the code asks of a device, not a GPU measurement)")
    for name, r in result.items():
        print(f"{name:>10}: {r['ops']} operations, {r['syncs']} syncs, {r['copies']} "
              f"host-to-device copies")
        for where, n in r["top_ops"]:
            print(f"{'':>12}{n:5d} ops  {where}")
        for kind in ("syncs_at", "copies_at"):
            for where, n in r[kind].items():
                print(f"{'':>12}{n:5d} {kind[:-3]:6s} {where}")
    return result


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m minivit.bench", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default="C-Ti/4", help=f"one of {', '.join(CONFIGS)}")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, help="default: the model's")
    cli.add_device(parser)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads, for minivit (the batch split between them) and PyTorch "
                             "(default: every core, shared by the processes on a machine)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--profile", action="store_true", help="time each op of a training step")
    parser.add_argument("--count", action="store_true", help="count the operations, syncs and "
                        "copies of a step (--device gpu on the strict CuPy stand-in of the tests)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    for name in ("batch_size", "threads", "steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be 1 or more, not {getattr(args, name)}")
    if args.image_size is not None and args.image_size < 1:
        parser.error(f"--image-size must be 1 or more, not {args.image_size}")
    return cli.run(lambda: bench(args))


def bench(args):
    """Time minivit (and PyTorch) as `args` say; print the table or JSON, return the result."""
    backend.check_device(args.device)
    if args.model not in CONFIGS:
        raise ConfigError(f"unknown model {args.model!r}: choose one of {', '.join(CONFIGS)}")
    config = {**CONFIGS[args.model], "num_classes": 10}
    if args.image_size:
        config["image_size"] = args.image_size
    memory.keep_freed_memory()  # as minivit.train does (and for PyTorch, in the same process)
    world = distributed.world()
    threads = args.threads or parallel.cores_per_rank(world)
    if args.device == "gpu" and world.size > 1:  # each rank its own GPU, as minivit.train
        backend.cupy.cuda.Device(world.gpu()).use()
    try:
        ours = Minivit(config, args.batch_size, args.device, threads, world)
    except ValueError as error:  # an image size the patch size does not divide
        raise ConfigError(f"cannot build {args.model}: {error}") from None
    if args.count:
        return print_counts(count(ours), args)
    if world.size > 1:
        return bench_processes(ours, args, world)
    runners, names = [ours], ["minivit"]
    for _ in range(args.warmup):
        ours.train_step()
    peak_memory = {"minivit": memory.peak_memory_mib(args.device)}  # before PyTorch allocates anything
    torch_note = None
    if not args.no_torch:
        try:
            runners.append(Torch(ours, args.device, threads))
            names.append("pytorch")
        except ImportError as error:
            torch_note = (f"no PyTorch comparison: {error}" if error.name != "torch"
                          else "PyTorch is not installed: pip install torch to compare")
    train = time_alternating(runners, "train_step", args.steps, args.warmup)
    forward = time_alternating(runners, "forward", args.steps, args.warmup)
    peak = matmul_peak(ours.xp)
    flops = model_flops(config)
    result = dict(model=args.model, batch_size=args.batch_size, image_size=config["image_size"],
                  device=args.device, threads=threads, dtype="float32",
                  forward_gflops_per_image=flops / 1e9, matmul_peak_gflops=peak / 1e9,
                  date=time.strftime("%Y-%m-%d"), peak_memory_mib=peak_memory, note=torch_note)
    for name, t_train, t_forward in zip(names, train, forward):
        result[name] = dict(train_images_per_second=args.batch_size / t_train,
                            forward_images_per_second=args.batch_size / t_forward,
                            train_mfu=3 * flops * args.batch_size / t_train / peak,
                            forward_mfu=flops * args.batch_size / t_forward / peak)
    if "pytorch" in result:
        result["train_ratio"] = train[1] / train[0]
        result["forward_ratio"] = forward[1] / forward[0]
    if args.profile:
        result["profile_seconds_per_step"], result["profile"] = profile_step(ours)
    if args.json:
        print(json.dumps(result, indent=2))
        return result
    print(f"{args.model}, batch {args.batch_size}, {config['image_size']} px, float32, "
          f"{args.device}, {threads} threads | {flops / 1e9:.3f} GFLOP per image forward | "
          f"matmul peak {peak / 1e9:.0f} GFLOP/s")
    for name in names:
        r = result[name]
        print(f"{name:>8}: train {r['train_images_per_second']:7.1f} img/s (MFU "
              f"{100 * r['train_mfu']:4.1f}%)   forward {r['forward_images_per_second']:7.1f} img/s "
              f"(MFU {100 * r['forward_mfu']:4.1f}%)")
    if "train_ratio" in result:
        print(f"minivit / pytorch: train {result['train_ratio']:.2f}x, forward "
              f"{result['forward_ratio']:.2f}x")
    print(f"peak memory of minivit alone: {peak_memory['minivit']:.0f} MiB")
    if torch_note:
        print(torch_note)
    if args.profile:
        print(f"\nprofile of one training step ({result['profile_seconds_per_step'] * 1e3:.0f} ms):")
        for op, seconds in result["profile"].items():
            print(f"  {op:32s} {seconds * 1e3:8.1f} ms")
    return result


def bench_processes(ours, args, world):
    """Under mpiexec -n N: images per second of the whole batch, shared by N processes, and the
    time each step spends in the all-reduce of its gradients (rank 0 prints)."""
    with parallel.blas_per_thread(ours.threads, world.size):  # one BLAS thread a data thread
        for _ in range(args.warmup):
            ours.train_step()
        world.seconds = 0.0
        train = time_alternating([ours], "train_step", args.steps, 0)[0]
        allreduce = world.seconds / args.steps
        forward = time_alternating([ours], "forward", args.steps, args.warmup)[0]
    result = dict(model=args.model, batch_size=args.batch_size, device=args.device,
                  processes=world.size, threads_per_process=ours.threads,
                  date=time.strftime("%Y-%m-%d"),
                  train_images_per_second=args.batch_size / train,
                  forward_images_per_second=args.batch_size / forward,
                  allreduce_ms_per_step=1e3 * allreduce, step_ms=1e3 * train,
                  gradient_mib=sum(p.size for p in ours.model.parameters()) * 4 / 2 ** 20)
    if world.rank:
        return result
    if args.json:
        print(json.dumps(result, indent=2))
        return result
    print(f"{args.model}, batch {args.batch_size} shared by {world.size} processes x "
          f"{ours.threads} threads, {args.device} | train {result['train_images_per_second']:.1f} "
          f"img/s ({result['step_ms']:.0f} ms a step, {result['allreduce_ms_per_step']:.1f} ms of "
          f"it in the all-reduce of {result['gradient_mib']:.1f} MiB) | forward "
          f"{result['forward_images_per_second']:.1f} img/s")
    return result


if __name__ == "__main__":
    main()
