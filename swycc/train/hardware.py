"""What the processor offers training: bf16 matrix units (for the CLI's ``--bf16`` default) and
the thread count (``--threads``).

bf16 autocast pays on a CPU only where the matrix units multiply bf16 natively: x86's
AVX512-BF16 or AMX-BF16, Arm's BF16 extension. Measured on the 2-core AMD EPYC dev machine
(AVX512-BF16, no AMX), one thread: a 2048 x 2048 matmul at ~92 GFLOP/s in fp32 and ~200 GFLOP/s
in bf16; the training step 1.6x faster in bf16 at 64 px, 1.9x at 128 px
(``bench/results_cpu_bf16_*.json``). Without such units oneDNN emulates
bf16 and it is slower than fp32, so the default there stays fp32.

Threads: torch defaults to one thread per core. When another process computes on the same cores,
its OpenMP threads and torch's oversubscribe them: the ``small`` training loop fell from ~13 to
~1 image/s on the dev machine with torch's 2 threads beside a second training run. ``--threads``
(or ``OMP_NUM_THREADS``) set to the cores that are free avoids it.
"""

from __future__ import annotations

from pathlib import Path

import torch

# CPU feature flags (Linux /proc/cpuinfo spelling, and torch.cpu.get_capabilities' keys) of
# native bf16 matrix arithmetic: x86 AVX512-BF16 and AMX-BF16; Arm's FEAT_BF16 ("bf16").
BF16_MATMUL_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags() -> set[str]:
    """The processor's feature flags, from torch's own probe and (on Linux) /proc/cpuinfo."""
    flags: set[str] = set()
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        try:
            flags |= {k for k, v in caps().items() if v is True}
        except RuntimeError:
            pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return flags
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags |= set(value.split())
    return flags


def cpu_has_bf16_matmul(flags: set[str] | None = None) -> bool:
    """True when this CPU multiplies bf16 matrices natively and torch's oneDNN can use it."""
    flags = cpu_flags() if flags is None else flags
    if not flags & set(BF16_MATMUL_FLAGS):
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_bf16(device_type: str) -> bool | None:
    """The ``--bf16`` default for a run on ``device_type``: on a CPU, whether it has bf16
    matrix units; elsewhere None (keep the config's value: CUDA runs opt in explicitly)."""
    return cpu_has_bf16_matmul() if device_type == "cpu" else None


# the most pixels in one forward/backward pass of a separable objective on a CPU (one 256 px
# image, four of 128 px): larger passes ran memory-bound, 2.1x slower per image at 256 px in
# passes of 8 than of 1 (f8c4 autoencoder, 1 thread, AMD EPYC Zen 3); equal at 128 px
CPU_PASS_PIXELS = 256 * 256


def default_pass_pixels(device_type: str) -> int:
    """The training loop's ``pass_pixels`` default: CPU_PASS_PIXELS on a CPU, 0 (whole
    micro-batches) elsewhere (a GPU wants large passes)."""
    return CPU_PASS_PIXELS if device_type == "cpu" else 0


def set_threads(n: int) -> None:
    """Use ``n`` threads for intra-op work and for inter-op work (the latter can only be set
    before torch's first parallel region; later it keeps its value)."""
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:
        pass
