"""Training at the CPU's bf16 speed: detection, the CLI's --bf16 default, --threads, and the bf16
training path itself (networks in bf16, schedule maths, losses and metrics in fp32)."""

import argparse

import pytest
import torch

from swycc.cli.args import build_config, resolve_bf16
from swycc.cli.main import make_parser
from swycc.train import hardware

HAS_BF16 = hardware.cpu_has_bf16_matmul()


def _train_args(*extra):
    return make_parser().parse_args(["train", "--preset", "tiny", "--out", "unused", *extra])


def test_bf16_flags_decide_detection():
    assert not hardware.cpu_has_bf16_matmul({"avx2", "avx512f", "fma"})
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    for flag in ("avx512_bf16", "amx_bf16", "bf16"):
        assert hardware.cpu_has_bf16_matmul({flag}) == onednn


def test_cpu_flags_agree_with_torch_probe():
    caps = torch.cpu.get_capabilities()
    flags = hardware.cpu_flags()
    for name in ("avx512_bf16", "amx_bf16", "avx2"):
        if caps.get(name) is True:
            assert name in flags


@pytest.mark.parametrize("supported", [True, False])
def test_bf16_default_follows_the_cpu(monkeypatch, supported):
    monkeypatch.setattr(hardware, "cpu_has_bf16_matmul", lambda flags=None: supported)
    assert build_config(_train_args("--device", "cpu")).train.bf16 is supported
    # explicit flags win either way
    assert build_config(_train_args("--device", "cpu", "--bf16")).train.bf16 is True
    assert build_config(_train_args("--device", "cpu", "--no-bf16")).train.bf16 is False


def test_bf16_default_keeps_the_config_on_cuda(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_bf16_matmul", lambda flags=None: True)
    ns = argparse.Namespace(bf16=None, device="cuda:0")
    assert resolve_bf16(ns) is None  # None: the preset's or config file's own value stays
    assert resolve_bf16(argparse.Namespace(bf16=False, device="cuda")) is False


def test_library_config_is_never_changed_by_detection(monkeypatch):
    """Only the CLI resolves the default: a library call keeps its config's explicit value."""
    from swycc.config import get_preset
    from swycc.train.autoencoder_task import AutoencoderTask

    monkeypatch.setattr(hardware, "cpu_has_bf16_matmul", lambda flags=None: True)
    cfg = get_preset("tiny")
    assert cfg.train.bf16 is False
    assert AutoencoderTask(cfg).train_config.bf16 is False


def test_threads_option_sets_torch_threads(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    from swycc.cli.args import apply_threads

    apply_threads(_train_args("--threads", "3"))
    apply_threads(_train_args())  # not given: torch's default stays
    assert calls == [3]
    from swycc.cli.main import UsageError

    with pytest.raises(UsageError, match="--threads"):
        make_parser().parse_args(["train", "--threads", "0"])


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bf16 matrix units (AVX512-BF16, "
                                         "AMX-BF16 or Arm BF16): the default stays fp32 here")
def test_bf16_cpu_step_runs_networks_in_bf16_and_losses_in_fp32(tiny_cfg):
    """One SWYCC training micro-step on the CPU with bf16 autocast: every convolution's output
    is bf16, the loss terms are fp32 and within bf16 rounding of the fp32 step's, and the
    gradients land in the fp32 parameters."""
    from swycc.autoencoders.base import Autoencoder
    from swycc.autoencoders.kinds import get_kind
    from swycc.config import override

    x = torch.rand(4, 3, 32, 32) * 2 - 1
    rows = torch.arange(4)
    results = {}
    for bf16 in (False, True):
        cfg = override(tiny_cfg, "train.bf16", bf16)
        torch.manual_seed(0)
        model = Autoencoder.from_config(cfg)
        conv_dtypes = set()
        hooks = [m.register_forward_hook(lambda m, i, o: conv_dtypes.add(o.dtype))
                 for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        objective = get_kind(cfg.model.method).build_objective(cfg, model, torch.device("cpu"))
        loss, logs = objective.micro_loss(x, 0, rows, 4)
        loss.backward()
        for h in hooks:
            h.remove()
        assert loss.dtype == torch.float32
        assert all(v.dtype == torch.float32 for v in logs.values())
        assert all(p.grad.dtype == torch.float32 for p in model.parameters()
                   if p.grad is not None)
        results[bf16] = (conv_dtypes, {k: float(v) for k, v in logs.items()})
    assert results[False][0] == {torch.float32}
    assert results[True][0] == {torch.bfloat16}
    for k, v in results[False][1].items():  # same weights, same noise: bf16 rounding only
        assert results[True][1][k] == pytest.approx(v, rel=0.05), k
