"""t2i tests run tiny models: one intra-op thread is fastest, and on a shared 2-core machine several threads per
process oversubscribe the cores (steps measured 20-50x slower)."""

import socket

import pytest
import torch

torch.set_num_threads(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def rendezvous():
    """`rendezvous(start)`: runs `start(port) -> (returncode, log)` of launched processes with a port that is free on
    127.0.0.1, and again with another one (3 tries) when they found it taken: another process can bind it between
    this check and the launcher's, so the outcome never depends on who gets there first."""

    def run(start):
        for _ in range(3):
            returncode, log = start(_free_port())
            if returncode == 0 or "address already in use" not in log.lower():
                break
        return returncode, log

    return run
