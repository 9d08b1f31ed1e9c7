import math
from dataclasses import replace

import pytest
import torch

from swycc.diffusion.schedule import alpha_sigma, logsnr
from swycc.generation.config import (DIT_PRESETS, DiTConfig, DiTRunConfig, get_dit_preset, shrink_dit)
from swycc.generation.objective import (DiTObjective, class_drop_mask, dit_loss, dit_sample,
                                 drop_labels)
from swycc.generation.dit import DiT, apply_rope, count_parameters, rope_2d_angles, rope_tables

TINY = get_dit_preset("dit-tiny").dit


def perturbed(cfg: DiTConfig, seed: int = 0) -> DiT:
    """A DiT with every parameter randomised (at init, adaLN-Zero hides most of the net)."""
    torch.manual_seed(seed)
    model = DiT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def test_rope_scores_depend_only_on_relative_offset():
    rows, cols, d = 4, 6, 16
    cos, sin = rope_tables(rope_2d_angles(rows, cols, d), torch.float64)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g,
                                                                        dtype=torch.float64)
    qr = apply_rope(q.expand(rows * cols, d), cos, sin)
    kr = apply_rope(k.expand(rows * cols, d), cos, sin)
    scores = qr @ kr.T  # (T, T)
    # independent formula: pairs (i, i + d/2) as complex numbers,
    # q_m . k_n = Re(sum q_c conj(k_c) e^{i (angle_m - angle_n)})
    qc, kc = torch.complex(*q.view(2, -1)), torch.complex(*k.view(2, -1))
    pos = [(m // cols, m % cols) for m in range(rows * cols)]
    f = 10_000.0 ** (-torch.arange(d // 4, dtype=torch.float64) / (d // 4))
    by_offset: dict[tuple, float] = {}
    for m, (rm, cm) in enumerate(pos):
        for n, (rn, cn) in enumerate(pos):
            rel = torch.cat([(rm - rn) * f, (cm - cn) * f])
            expect = (qc * kc.conj() * torch.exp(1j * rel)).real.sum()
            assert scores[m, n].item() == pytest.approx(expect.item(), abs=1e-12)
            off = (rm - rn, cm - cn)
            if off in by_offset:
                assert scores[m, n].item() == pytest.approx(by_offset[off], abs=1e-12)
            by_offset[off] = scores[m, n].item()
    assert len(set(round(v, 6) for v in by_offset.values())) > 10  # offsets are not ignored
    # rotations preserve norms
    assert torch.allclose(qr.norm(dim=1), q.norm().expand(rows * cols))


def test_blocks_are_identity_and_net_outputs_zero_at_init():
    torch.manual_seed(0)
    model = DiT(TINY)
    x = torch.randn(3, TINY.latent_channels, 8, 8)
    t = torch.rand(3)
    out = model(x, logsnr(t), torch.tensor([0, 4, TINY.num_classes]))
    assert out.shape == x.shape and torch.equal(out, torch.zeros_like(x))
    tokens = torch.randn(3, 16, TINY.hidden)
    cond = torch.randn(3, TINY.hidden)
    cos, sin = model.rope(4, 4, x.device, x.dtype)
    for block in model.blocks:
        assert torch.equal(block(tokens, cond, cos, sin), tokens)
    # once the modulations are trained the block is no longer the identity
    with torch.no_grad():
        model.blocks[0].ada.weight.normal_()
    assert not torch.allclose(model.blocks[0](tokens, cond, cos, sin), tokens)


@pytest.mark.parametrize("name", list(DIT_PRESETS))
def test_every_preset_builds_and_runs_at_tiny_width(name):
    cfg = shrink_dit(DIT_PRESETS[name].dit)
    torch.manual_seed(0)
    model = DiT(cfg)
    assert count_parameters(cfg) == sum(p.numel() for p in model.parameters())
    s = cfg.latent_size
    x = torch.randn(2, cfg.latent_channels, s, s)
    out = model(x, torch.tensor([-3.0, 5.0]), torch.tensor([1, cfg.num_classes]))
    assert out.shape == x.shape


def test_parameter_counts_match_the_dit_paper():
    # DiT paper, Table 1 (GELU MLP; our SwiGLU is parameter-matched): S/2 33M, B/2 130M,
    # L/2 458M, XL/2 675M on 32x32x4 latents, 1000 classes
    paper = {"dit-s2": 33e6, "dit-b2": 130e6, "dit-l2": 458e6, "dit-xl2": 675e6}
    for name, n in paper.items():
        cfg = get_dit_preset(name).dit
        assert (cfg.latent_size, cfg.latent_channels, cfg.patch) == (32, 4, 2)
        assert abs(count_parameters(cfg) / n - 1) < 0.10, name
    assert get_dit_preset("dit-L/2").dit.swiglu_hidden == 2736  # 2/3 * 4096 rounded up to x8


def test_swiglu_hidden_is_parameter_matched():
    for d in (384, 768, 1024, 1152):
        cfg = DiTConfig(hidden=d, heads=d // 64)
        swiglu = 3 * d * cfg.swiglu_hidden
        gelu = 2 * d * 4 * d
        assert abs(swiglu / gelu - 1) < 0.01 and cfg.swiglu_hidden % 8 == 0


def test_non_square_latents_and_conditioning():
    model = perturbed(TINY)
    x = torch.randn(2, TINY.latent_channels, 6, 10)  # a 3 x 5 token grid
    ls = torch.tensor([1.0, 1.0])
    out = model(x, ls, torch.tensor([1, 1]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, model(x, ls, torch.tensor([2, TINY.num_classes])))
    assert not torch.allclose(out, model(x, ls + 5, torch.tensor([1, 1])))
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, TINY.latent_channels, 7, 8), ls[:1], torch.tensor([0]))


def test_class_drop_rate_and_null_label():
    g = torch.Generator().manual_seed(0)
    n, p = 200_000, 0.1
    mask = class_drop_mask(n, p, g)
    assert abs(mask.float().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(mask, class_drop_mask(n, p, torch.Generator().manual_seed(0)))
    labels = torch.arange(6)
    m = torch.tensor([True, False, True, False, False, True])
    assert drop_labels(labels, m, 10).tolist() == [10, 1, 10, 3, 4, 10]
    assert not class_drop_mask(1000, 0.0, g).any()


def test_dit_loss_is_v_mse_and_microbatches_add_up():
    cfg = replace(get_dit_preset("dit-tiny"), dit=TINY)
    model = perturbed(TINY)
    z = torch.randn(8, TINY.latent_channels, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8) % TINY.num_classes
    t, eps = torch.rand(8), torch.randn_like(z)
    drop = torch.tensor([True] + [False] * 7)
    loss, logs = dit_loss(model, z, y, t, eps, drop, TINY.num_classes)
    a, s = alpha_sigma(t)
    a, s = a.view(-1, 1, 1, 1), s.view(-1, 1, 1, 1)
    y_used = y.clone()
    y_used[0] = TINY.num_classes
    v_hat = model(a * z + s * eps, logsnr(t), y_used)
    assert loss.item() == pytest.approx((v_hat - (a * eps - s * z)).pow(2).mean().item(), rel=1e-5)
    assert logs["loss"].item() == pytest.approx(loss.item())
    # two micro-batches of the objective average to the full batch's loss (global draw)
    obj = DiTObjective(cfg, model, torch.device("cpu"))
    full, _ = obj.micro_loss((z, y), 3, torch.arange(8), 8)
    halves = [obj.micro_loss((z[r], y[r]), 3, r, 8)[0] for r in (torch.arange(4),
                                                                 torch.arange(4, 8))]
    assert full.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-5)
    assert full.item() != pytest.approx(obj.micro_loss((z, y), 4, torch.arange(8), 8)[0].item())


class PointOracle(torch.nn.Module):
    """The exact v-predictor when the data is one point per label (null: their mean)."""

    def __init__(self, points: torch.Tensor):
        super().__init__()
        self.points = points  # (num_classes + 1, C, h, w)
        self.calls = []

    def forward(self, z_t, ls, labels):
        self.calls.append(labels.clone())
        x = self.points[labels]
        s2 = torch.sigmoid(-ls).view(-1, 1, 1, 1)  # sigma^2 = 1 / (1 + e^logsnr)
        a, s = (1 - s2).sqrt(), s2.sqrt()
        eps = (z_t - a * x) / s
        return a * eps - s * x


def test_ddim_sampler_recovers_the_point_and_guides_with_the_null_class():
    pts = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    oracle = PointOracle(pts)
    labels = torch.tensor([0, 1])
    g = torch.Generator().manual_seed(0)
    z = dit_sample(oracle, labels, (2, 4, 4), steps=10, guidance=0.0, generator=g, null_label=2)
    assert torch.allclose(z, pts[:2], atol=1e-3)
    oracle.calls.clear()
    z = dit_sample(oracle, labels, (2, 4, 4), steps=10, guidance=0.5, generator=g, null_label=2)
    assert oracle.calls[0].tolist() == [0, 1, 2, 2]  # conditional and null branches, one batch
    # v is linear in the point: guided sampling lands on x_c + w (x_c - x_null)
    assert torch.allclose(z, pts[:2] + 0.5 * (pts[:2] - pts[2:]), atol=1e-3)


def test_sampler_runs_the_network():
    model = perturbed(TINY)
    g = torch.Generator().manual_seed(0)
    z = dit_sample(model, torch.tensor([0, 3]), (TINY.latent_channels, 8, 8), steps=3,
                   generator=g)
    assert z.shape == (2, TINY.latent_channels, 8, 8) and torch.isfinite(z).all()
    with pytest.raises(ValueError, match="steps"):
        dit_sample(model, torch.tensor([0]), (2, 8, 8), steps=0)


def test_run_config_round_trip_and_validation():
    for cfg in DIT_PRESETS.values():
        assert DiTRunConfig.from_json(cfg.to_json()) == cfg
    paper = get_dit_preset("dit-l2")
    assert (paper.train.batch_size, paper.train.lr, paper.train.warmup_steps) == (256, 1e-4, 0)
    assert (paper.dit.class_dropout, paper.sampling.guidance) == (0.1, 0.5)
    d = paper.to_dict()
    d["dit"]["hiden"] = 3
    with pytest.raises(ValueError, match="hiden"):
        DiTRunConfig.from_dict(d)
    d = paper.to_dict()
    d["dit"]["heads"] = 7
    with pytest.raises(ValueError, match="divisible"):
        DiTRunConfig.from_dict(d)
    with pytest.raises(ValueError, match="unknown DiT preset"):
        get_dit_preset("dit-xxl")


def test_tiny_dit_learns_and_runs_under_bf16_autocast():
    torch.manual_seed(0)
    model = DiT(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(8) % TINY.num_classes
    z = (y.float() / 4 - 1).view(-1, 1, 1, 1).expand(8, TINY.latent_channels, 8, 8)  # by class
    t_eval, eps_eval = torch.rand(64, generator=g), torch.randn(64, *z.shape[1:], generator=g)
    no_drop = torch.zeros(64, dtype=torch.bool)

    def eval_loss():
        with torch.no_grad():
            return dit_loss(model, z.repeat(8, 1, 1, 1), y.repeat(8), t_eval, eps_eval, no_drop,
                            TINY.num_classes)[0].item()

    before = eval_loss()
    for _ in range(40):
        t, eps = torch.rand(8, generator=g), torch.randn(z.shape, generator=g)
        loss, _ = dit_loss(model, z, y, t, eps, class_drop_mask(8, 0.1, g), TINY.num_classes)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < 0.5 * before
    loss, _ = dit_loss(model, z, y, t, eps, no_drop[:8], TINY.num_classes, bf16=True)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
