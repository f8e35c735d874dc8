"""Data parallelism across processes and machines: MPI, through mpi4py.

    mpiexec -n 2 python -m minivit.train --dataset digits --threads 1

starts two processes (ranks) that train one model together, as minivit.parallel's threads do
inside one process, one level up:

    1. every rank draws the same batch (the same seed gives the same permutation) and takes its
       rows: the batch is cut into N * T shards (N ranks, T threads each), rank r takes shards
       r T .. r T + T - 1, and each of its threads one of them;
    2. each rank computes sum_s (n_s / B) dloss_s/dW over its shards, in one flat buffer;
    3. one Allreduce sums the buffers of all ranks: every rank now holds dL/dW of the whole batch,
       applies the same optimizer step, and the weights stay identical without being sent again.

An Allreduce of n bytes over N ranks joined in a ring moves 2 (N - 1) / N * n bytes through each
rank's link, in 2 (N - 1) steps of n / N: one flat buffer a step, not one message per parameter,
so the latency is paid 2 (N - 1) times a step rather than that many times per parameter. Without
mpi4py, or in a process not started by mpiexec, the world is one process and nothing changes.

On GPUs, each process uses GPU (its rank on its machine) % (the GPUs it sees), never one that
another process of its machine uses, and the all-reduce goes GPU to GPU through NCCL (what
PyTorch's DistributedDataParallel uses), its communicator's unique id sent from rank 0 by MPI;
without NCCL, through host memory by MPI.
"""
import hashlib
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np

from minivit import backend

# environment variables that MPICH's and Open MPI's launchers set in every process they start
LAUNCHERS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


class World:
    """The processes of one run: rank `rank` of `size`. One process is rank 0 of 1, and then
    every collective is the identity."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        # the processes on this process's own machine (they share its cores and GPUs)
        self.machine = comm.Split_type(split_type_shared()) if comm is not None else None
        self.local_rank = self.machine.Get_rank() if comm is not None else 0
        self.seconds = 0.0  # time spent in allreduce, for the benchmark
        self._nccl = None

    def sum(self, array):
        """The element-wise sum of `array` over all ranks, on every rank (one Allreduce). A GPU
        array goes through NCCL, or through host memory without it."""
        if self.size == 1:
            return array
        if backend.is_gpu_array(array) and self.nccl() is not None:
            return self.nccl_sum(array)
        from mpi4py import MPI
        start = time.perf_counter()
        host = np.ascontiguousarray(backend.to_device(array, "cpu"))
        total = np.empty_like(host)
        self.comm.Allreduce(host, total, op=MPI.SUM)
        self.seconds += time.perf_counter() - start
        return backend.to_device(total, backend.device_of(array))

    def nccl(self):
        """NCCL's communicator for this job's GPUs (made once), or None where NCCL is missing."""
        if self._nccl is None:
            from cupy.cuda import nccl
            if not getattr(nccl, "available", False):
                self._nccl = False
            else:
                unique_id = self.comm.bcast(nccl.get_unique_id() if self.rank == 0 else None)
                self._nccl = nccl.NcclCommunicator(self.size, unique_id, self.rank)
        return self._nccl or None

    def gpu(self):
        """The GPU this process takes: number (rank on its machine) % (GPUs it sees), so a
        launcher that shows each process its own GPU works too. Two processes of a machine on
        one GPU (the same PCI bus id) are refused: NCCL cannot use one GPU twice."""
        runtime = backend.cupy.cuda.runtime
        count = runtime.getDeviceCount()
        device = self.local_rank % count
        buses = self.machine.allgather(runtime.deviceGetPCIBusId(device))
        if buses.count(buses[self.local_rank]) > 1:
            from minivit.errors import DeviceError
            raise DeviceError(f"rank {self.rank} would share its GPU ({buses[self.local_rank]}) "
                              f"with another process on its machine, which has {count} GPU(s): "
                              f"start at most {count} processes a machine (mpiexec -ppn), or "
                              "show each process its own GPU (CUDA_VISIBLE_DEVICES)")
        return device

    def nccl_sum(self, array):
        from cupy.cuda import nccl
        start = time.perf_counter()
        cupy = backend.cupy
        array = cupy.ascontiguousarray(array)
        total = cupy.empty_like(array)
        kinds = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
        self.nccl().allReduce(array.data.ptr, total.data.ptr, array.size, kinds[array.dtype.name],
                              nccl.NCCL_SUM, cupy.cuda.get_current_stream().ptr)
        self.seconds += time.perf_counter() - start  # launch time: NCCL runs on the stream
        return total

    def gather(self, array):
        """The arrays of all ranks, concatenated in rank order, on every rank."""
        if self.size == 1:
            return array
        parts = self.comm.allgather(backend.to_device(array, "cpu"))
        return backend.to_device(np.concatenate(parts), backend.device_of(array))

    def rows(self, n):
        """The slice of n items (a test set) that this rank evaluates."""
        bounds = np.linspace(0, n, self.size + 1).round().astype(int).tolist()
        return slice(bounds[self.rank], bounds[self.rank + 1])

    def check_same(self, what, value):
        """Raise on every rank if `value` (a string) is not the same on all of them."""
        if self.size == 1:
            return
        values = self.comm.allgather(value)
        odd = [rank for rank, v in enumerate(values) if v != values[0]]
        if odd:
            from minivit.errors import ConfigError
            raise ConfigError(f"rank {odd[0]} has another {what} than rank 0: start every rank "
                              "with the same minivit, options and data")

    def processes(self):
        """Where every rank runs, 'rank host:pid' for each (a collective): the name of a process
        that dies is its PID in the launcher's message, and this maps it to its rank."""
        if self.size == 1:
            return ""
        places = self.comm.allgather(f"{socket.gethostname()}:{os.getpid()}")
        return ", ".join(f"{rank} {place}" for rank, place in enumerate(places))

    def ranks_on_this_machine(self):
        """How many ranks share this process's machine (they share its cores)."""
        return self.machine.Get_size() if self.machine is not None else 1

    def first_rank_first(self, do):
        """do() on each machine's first rank, then on the others of that machine (a download or a
        cache is made once a machine, before the others read it; with a shared folder rank 0's
        is found by the rest); returns this rank's result."""
        if self.size == 1:
            return do()
        if self.rank == 0:
            result = do()
        self.comm.Barrier()  # rank 0 first: on a shared folder, the others find its work
        if self.rank != 0 and self.local_rank == 0:
            result = do()
        self.machine.Barrier()  # then each machine's first, before its others
        return result if self.local_rank == 0 else do()

    def abort(self, message):
        """Print `message` and end every rank of the job (no rank is left waiting)."""
        if self.rank:
            time.sleep(1)  # if rank 0 fails too, its line alone is printed
        print(message, file=sys.stderr, flush=True)
        time.sleep(0.3)  # let mpiexec forward the line before Abort tears the job down
        self.comm.Abort(1)
        os._exit(1)  # some MPIs' Abort returns: the caller must not print the line again


def split_type_shared():
    from mpi4py import MPI
    return MPI.COMM_TYPE_SHARED


_world = []


def world():
    """This process's World: MPI's, when started by mpiexec and mpi4py is installed."""
    if not _world:
        comm = None
        if any(name in os.environ for name in LAUNCHERS):
            try:
                from mpi4py import MPI
                comm = MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None
            except ImportError:
                print("warning: started by mpiexec, but mpi4py is not installed: every process "
                      "trains alone (pip install mpi4py mpich)", file=sys.stderr)
        _world.append(World(comm))
    return _world[0]


def ring_allreduce_seconds(nbytes, ranks, bandwidth, latency):
    """The time a ring all-reduce of `nbytes` over `ranks` processes takes, by the usual model:
    2 (N - 1) steps (a reduce-scatter, then an all-gather), each sending n / N bytes over every
    link at once: 2 (N - 1) / N * n / bandwidth + 2 (N - 1) * latency (bytes/s, seconds)."""
    steps = 2 * (ranks - 1)
    return steps / ranks * nbytes / bandwidth + steps * latency


def source_hash():
    """A fingerprint of minivit's own source files, to find ranks running another version."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
