"""The process's place in a multi-process run, from the launcher's environment (torch-free).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT together. Some job
launchers set a few of them for other reasons, so a partial or inconsistent set is refused
rather than guessed at: a stray RANK=1 would otherwise make a lone process a silent worker.
"""

import os
from dataclasses import dataclass

from wsss.errors import WsssError

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_HOW = "torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT together"


@dataclass(frozen=True)
class Launch:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _number(name: str) -> int:
    text = os.environ[name]
    try:
        return int(text)
    except ValueError:
        raise WsssError(f"{name}: expected a whole number, got '{text[:40]}' ({_HOW})") from None


def launch() -> Launch:
    """This process's rank, world size and local rank; a lone process when no launcher
    variable is set (or RANK=0 with WORLD_SIZE=1)."""
    present = [name for name in TORCHRUN_VARS if name in os.environ]
    if not present:
        return Launch()
    for name in ("RANK", "WORLD_SIZE"):
        if name not in os.environ:
            raise WsssError(f"{name} is not set but {present[0]} is ({_HOW})")
    rank, world_size = _number("RANK"), _number("WORLD_SIZE")
    if world_size < 1 or not 0 <= rank < world_size:
        raise WsssError(f"RANK={rank}, WORLD_SIZE={world_size}: expected 0 <= RANK < WORLD_SIZE")
    if world_size == 1:
        return Launch()
    missing = [name for name in TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise WsssError(f"WORLD_SIZE={world_size} but {missing[0]} is not set ({_HOW})")
    local_rank = _number("LOCAL_RANK")
    if not 0 <= local_rank < world_size:
        raise WsssError(f"LOCAL_RANK={local_rank}: expected 0 <= LOCAL_RANK < WORLD_SIZE")
    return Launch(rank, world_size, local_rank)
