"""The only module that imports torch.distributed: the rendezvous store and the gloo process group.

Imported only on the ``--distributed`` path, in the interpreter that runs flashdoctor (which under
torchrun or srun is the rank's own interpreter). gloo works without NCCL and without GPUs.
"""

from __future__ import annotations

import datetime
import os
import warnings
from typing import Any

from flashdoctor.actions.cluster.launch import LaunchInfo
from flashdoctor.errors import UsageError


def import_dist() -> Any:
    """torch.distributed, or a UsageError saying why not."""
    # Our own store and gloo errors are reported as findings; torch's C++ log lines about them would
    # only bury the report. TORCH_CPP_LOG_LEVEL=INFO (set by the user) still shows them.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    try:
        with warnings.catch_warnings():
            # torch warns at import when numpy is absent; nothing here needs numpy.
            warnings.filterwarnings("ignore", message=".*NumPy.*")
            import torch.distributed as dist
    except ImportError as exc:
        raise UsageError(
            f"--distributed needs torch in the interpreter running flashdoctor: {exc}",
            hint="run flashdoctor with the job's Python (python -m flashdoctor check --distributed)",
        ) from None
    if not dist.is_available():
        raise UsageError("this torch build has no torch.distributed support")
    return dist


class StoreUnreachable(Exception):
    pass


def connect_store(launch: LaunchInfo, timeout_s: float) -> Any:
    """The rendezvous store. Rank 0 hosts it unless the launcher's agent does (torchrun); nobody waits
    for the others here (``wait_for_workers=False``): the protocol's bounded waits name the absent.
    Clients retry the connection until ``timeout_s``; then StoreUnreachable."""
    dist = import_dist()
    timeout = datetime.timedelta(seconds=timeout_s)
    host = launch.rank == 0 and not launch.agent_store
    try:
        if host:
            return dist.TCPStore(
                host_name=launch.master_addr,
                port=launch.master_port,
                is_master=True,
                wait_for_workers=False,
                timeout=timeout,
            )
        return dist.TCPStore(
            host_name=launch.master_addr, port=launch.master_port, is_master=False, timeout=timeout
        )
    except (RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if host:
            raise StoreUnreachable(
                f"rank 0 cannot host the rendezvous store on port {launch.master_port}: {first}"
            ) from None
        who = "torchrun's agent" if launch.agent_store else "rank 0"
        raise StoreUnreachable(
            f"no rendezvous store at {launch.rendezvous} within {timeout_s:g} s ({who} hosts it): "
            f"rank 0 never came up, or this node cannot reach it ({first})"
        ) from None


class GlooCollective:
    """A gloo process group over the participants: rank 0 broadcasts the exit code. It receives nothing
    over it (gloo aborts a process sent more bytes than it posted a buffer for): the results are read
    from the store."""

    def __init__(self, store: Any, prefix: str, index: int, size: int, timeout_s: float) -> None:
        self.dist = import_dist()
        import torch

        self.torch = torch
        self.dist.init_process_group(
            backend="gloo",
            store=self.dist.PrefixStore(prefix, store),
            rank=index,
            world_size=size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )

    def broadcast(self, code: int | None) -> int:
        torch = self.torch
        t = torch.tensor([code if code is not None else -1], dtype=torch.int64)
        self.dist.broadcast(t, src=0)
        return int(t.item())

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()
