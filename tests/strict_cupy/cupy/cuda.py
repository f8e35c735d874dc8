"""cupy.cuda, as far as minivit uses it: pretend devices, a stream, and NCCL (emulated over MPI,
for the processes of an `mpiexec`, on the arrays' memory found from their pointers)."""
import ctypes
import os

import numpy as np


class runtime:  # noqa: N801  (a module in CuPy)
    @staticmethod
    def getDeviceCount():  # noqa: N802  (CuPy's name)
        """1 pretend GPU, or as many as STRICT_CUPY_GPUS says (a multi-GPU machine)."""
        return int(os.environ.get("STRICT_CUPY_GPUS", "1"))

    @staticmethod
    def deviceGetPCIBusId(device):  # noqa: N802  (CuPy's name)
        """The pretend GPU's bus id: one per device number, the same in every process."""
        return f"0000:{0x10 + int(device):02x}:00.0"


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Stream:
    ptr = 0


def get_current_stream():
    return _Stream()


class nccl:  # noqa: N801  (a module in CuPy)
    """cupy.cuda.nccl: a communicator whose allReduce sums through MPI (STRICT_CUPY_NCCL=0: a
    CuPy built without NCCL, which minivit answers by summing through host memory)."""
    available = os.environ.get("STRICT_CUPY_NCCL", "1") != "0"
    NCCL_SUM, NCCL_FLOAT32, NCCL_FLOAT64 = 0, 7, 8
    DTYPES = {7: np.float32, 8: np.float64}

    @staticmethod
    def get_unique_id():
        return tuple(range(8))

    class NcclCommunicator:
        def __init__(self, ndev, unique_id, rank):
            from mpi4py import MPI
            self.comm, self.rank = MPI.COMM_WORLD, rank
            assert self.comm.Get_size() == ndev and self.comm.Get_rank() == rank

        def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):  # noqa: N802
            from mpi4py import MPI

            from . import counts
            assert op == nccl.NCCL_SUM
            dtype = np.dtype(nccl.DTYPES[datatype])
            send, receive = (np.frombuffer((ctypes.c_char * (count * dtype.itemsize)).from_address(
                pointer), dtype=dtype) for pointer in (sendbuf, recvbuf))
            self.comm.Allreduce(send.copy(), receive, op=MPI.SUM)
            counts.op()
