"""The GAN autoencoder baseline: loss maths, gradient isolation of the two players, the
adversarial start step, checkpoint state, and tiny end-to-end runs (tiny configs, CPU)."""

import json
import math
from dataclasses import replace

import pytest
import torch

from swycc.autoencoders.base import Autoencoder
from swycc.config import get_preset, override
from swycc.losses.adversarial import (
    adaptive_weight,
    discriminator_loss,
    ema_update,
    generator_loss,
    lecam_regularizer,
    r1_penalty,
)
from swycc.nn.autoencoder_nets import Decoder
from swycc.nn.discriminator import Discriminator
from swycc.train.checkpoint import flatten, unflatten
from swycc.train.gan_objective import GANObjective


def _gan_cfg(base, **over):
    cfg = override(base, "model.method", "gan")
    cfg = override(cfg, "model.decoder.adaptive_norm", True)
    over = {"loss.adversarial_start": 0, **over}
    for k, v in over.items():
        cfg = override(cfg, k, v)
    return cfg


def _objective(cfg, seed=0):
    torch.manual_seed(seed)
    model = Autoencoder.from_config(cfg)
    return model, GANObjective(cfg, model, torch.device("cpu"))


def _batch(n=4, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _g_step(obj, model, x, step):
    model.zero_grad(set_to_none=True)
    loss, logs = obj.micro_loss(x, step, torch.arange(len(x)), len(x))
    loss.backward()
    return loss, logs


# ---- pure loss maths ----------------------------------------------------------------------------

def test_gan_losses_exact_values():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    # hinge: 0.5 * (mean(relu(1 - r)) + mean(relu(1 + f))) = 0.5 * (2.5/3 + 3/3)
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(0.5 * (2.5 + 3) / 3)
    assert generator_loss(fake, "hinge").item() == pytest.approx(1 / 3 * (2.0 - 0.0 - 1.0))
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    ns = 0.5 * (sum(sp(-r) for r in real.tolist()) / 3 + sum(sp(f) for f in fake.tolist()) / 3)
    assert discriminator_loss(real, fake, "non-saturating").item() == pytest.approx(ns)
    assert generator_loss(fake, "non-saturating").item() == pytest.approx(
        sum(sp(-f) for f in fake.tolist()) / 3)
    with pytest.raises(ValueError, match="gan_loss"):
        generator_loss(fake, "wgan")


def test_lecam_regularizer_and_ema():
    real, fake = torch.tensor([1.0, -1.0]), torch.tensor([0.0, 2.0])
    # E[relu(D(x) - a_F)^2] + E[relu(a_R - D(x_hat))^2], a_R = 0.5, a_F = -0.5
    want = (1.5 ** 2 + 0.0) / 2 + (0.5 ** 2 + 0.0) / 2
    assert lecam_regularizer(real, fake, 0.5, -0.5).item() == pytest.approx(want)
    assert ema_update(torch.tensor(1.0), torch.tensor(3.0), 0.75).item() == pytest.approx(1.5)


def test_r1_penalty_exact_values():
    # D(x) = 0.5 ||x||^2 (one logit per image): grad_x D = x, so R1 = mean_i ||x_i||^2
    x = _batch(n=3, size=4).requires_grad_(True)
    logits = 0.5 * x.pow(2).flatten(1).sum(1).view(3, 1, 1, 1)
    want = x.detach().pow(2).flatten(1).sum(1).mean()
    assert r1_penalty(x, logits).item() == pytest.approx(want.item(), rel=1e-6)
    # a patch map D(x) = x[:, :1] (h x w logits): the per-image score is their mean, so
    # grad = 1 / (h w) on channel 0 and R1 = h w / (h w)^2 = 1 / 16 at 4 x 4
    x = _batch(n=2, size=4).requires_grad_(True)
    assert r1_penalty(x, x[:, :1]).item() == pytest.approx(1 / 16)
    # the graph is kept: the penalty back-propagates to D's parameters (here a scale a)
    a = torch.tensor(2.0, requires_grad=True)
    x = _batch(n=2, size=4).requires_grad_(True)
    r1_penalty(x, a * x[:, :1]).backward()  # R1 = a^2 / 16  ->  dR1/da = a / 8
    assert a.grad.item() == pytest.approx(2.0 / 8)


def test_discriminator_step_adds_r1_on_real_images(tiny_cfg):
    gamma = 10.0
    model, obj = _objective(_gan_cfg(tiny_cfg, **{"loss.r1_weight": gamma}))
    x = _batch()
    _g_step(obj, model, x, step=0)
    disc = obj.discriminator
    # independent value: one image at a time, D's mean patch logit differentiated by hand
    per_image = []
    for xi in x:
        xi = xi[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(disc(xi).mean(), xi)
        per_image.append(g.pow(2).sum())
    want = torch.stack(per_image).mean()
    model.zero_grad(set_to_none=True)
    logs = obj.after_step(x, 0)
    assert logs["r1"].item() == pytest.approx(want.item(), rel=1e-4)
    assert all(p.grad is None for p in model.parameters())
    # R1 changes D's update against the same step without it
    model0, obj0 = _objective(_gan_cfg(tiny_cfg))
    _g_step(obj0, model0, x, step=0)
    obj0.after_step(x, 0)
    assert "r1" not in obj0.after_step(x, 1)
    assert any(not torch.allclose(a, b) for a, b in zip(obj0.discriminator.parameters(),
                                                        disc.parameters()))


def test_adaptive_weight_tiny_case():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    a, b = torch.tensor([3.0, 4.0]), torch.tensor([0.6, 0.8])
    lam = adaptive_weight((a * w).sum(), (b * w).sum(), w)  # ||a|| / (||b|| + 1e-4) = 5 / 1.0001
    assert lam.item() == pytest.approx(5.0 / 1.0001)
    assert not lam.requires_grad and w.grad is None  # autograd.grad leaves .grad alone
    # a vanishing adversarial gradient: 5 / 1e-4 = 5e4, clamped to 1e4
    assert adaptive_weight((a * w).sum(), (0 * w).sum(), w).item() == pytest.approx(1e4)
    # the losses keep their graphs: backward after the weight still works
    rec, adv = (a * w).sum(), (b * w).sum()
    (rec + adaptive_weight(rec, adv, w) * adv).backward()
    assert torch.allclose(w.grad, a + (5.0 / 1.0001) * b)


# ---- networks -----------------------------------------------------------------------------------

def test_discriminator_patch_logits_and_paper_sizes():
    d = Discriminator(8, 3, num_groups=4)
    assert d(_batch(2, 32)).shape == (2, 1, 4, 4)
    assert d(_batch(1, 40)).shape == (1, 1, 5, 5)
    paper = get_preset("paper")
    n_disc = sum(p.numel() for p in Discriminator(paper.loss.disc_base_channels,
                                                  paper.loss.disc_layers).parameters())
    assert 4.5e6 < n_disc < 5.5e6  # 4.86M
    dec = Decoder(replace(paper.model.decoder, adaptive_norm=True), paper.model.latent_channels)
    n_dec = sum(p.numel() for p in dec.parameters())
    assert abs(n_dec / 63.4e6 - 1) < 0.10  # Table 3: GAN decoder 63.4M (here 63.5M)


# ---- the two players' gradients -----------------------------------------------------------------

def test_generator_step_gives_no_gradient_to_discriminator(tiny_cfg):
    model, obj = _objective(_gan_cfg(tiny_cfg))
    loss, logs = _g_step(obj, model, _batch(), step=0)
    assert torch.isfinite(loss) and "loss_g_adv" in logs and "adv_weight" in logs
    assert all(p.grad is None for p in obj.discriminator.parameters())
    assert model.d_initial.last_layer.grad is not None
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0
    # the adversarial term does reach the generator: its gradient differs from L_rec's alone
    g_adv = model.encoder.conv_in.weight.grad.clone()
    model2, obj2 = _objective(_gan_cfg(tiny_cfg, **{"loss.adversarial_start": 10}))
    _g_step(obj2, model2, _batch(), step=0)
    assert not torch.allclose(g_adv, model2.encoder.conv_in.weight.grad)


def test_discriminator_step_gives_no_gradient_to_generator(tiny_cfg):
    model, obj = _objective(_gan_cfg(tiny_cfg))
    x = _batch()
    _g_step(obj, model, x, step=0)
    model.zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in obj.discriminator.parameters()]
    logs = obj.after_step(x, 0)
    assert {"loss_d", "d_logit_real", "d_logit_fake", "lecam"} <= set(logs)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is None for p in obj.discriminator.parameters())  # cleared after its step
    assert any(not torch.equal(a, p) for a, p in zip(before, obj.discriminator.parameters()))
    assert obj.disc_steps == 1 and obj.lecam_initialized
    # without a preceding micro_loss the step reconstructs by itself, still without gradients
    obj.after_step(_batch(seed=1), 1)
    assert all(p.grad is None for p in model.parameters())


def test_adversarial_term_off_before_its_start_step(tiny_cfg):
    model, obj = _objective(_gan_cfg(tiny_cfg, **{"loss.adversarial_start": 3}))
    calls = []
    obj.discriminator.register_forward_hook(lambda *a: calls.append(1))
    x = _batch()
    d0 = [p.detach().clone() for p in obj.discriminator.parameters()]
    for step in range(3):
        loss, logs = _g_step(obj, model, x, step)
        assert "loss_g_adv" not in logs and "adv_weight" not in logs
        assert loss.item() == pytest.approx(logs["loss_rec"].item())
        assert obj.after_step(x, step) == {}
    assert not calls and obj.disc_steps == 0
    assert all(torch.equal(a, p) for a, p in zip(d0, obj.discriminator.parameters()))
    loss, logs = _g_step(obj, model, x, 3)
    assert "loss_g_adv" in logs and calls
    assert loss.item() == pytest.approx((logs["loss_rec"] + logs["adv_weight"]
                                         * logs["loss_g_adv"]).item(), rel=1e-5)
    assert "loss_d" in obj.after_step(x, 3)


def test_fixed_adversarial_weight_and_non_saturating(tiny_cfg):
    cfg = _gan_cfg(tiny_cfg, **{"loss.adaptive_adversarial_weight": False,
                                "loss.adversarial_weight": 0.25,
                                "loss.gan_loss": "non-saturating"})
    model, obj = _objective(cfg)
    loss, logs = _g_step(obj, model, _batch(), 0)
    assert logs["adv_weight"].item() == pytest.approx(0.25)
    assert torch.isfinite(loss) and torch.isfinite(obj.after_step(_batch(), 0)["loss_d"])
    with pytest.raises(ValueError, match="gan_loss"):
        _objective(override(cfg, "loss.gan_loss", "wgan"))


def test_objective_state_round_trips_through_checkpoint_format(tiny_cfg):
    cfg = _gan_cfg(tiny_cfg)
    model, obj = _objective(cfg)
    for step in range(2):
        x = _batch(seed=step)
        _g_step(obj, model, x, step)
        obj.after_step(x, step)
    skeleton, tensors = flatten(obj.state_dict())
    state = unflatten(json.loads(json.dumps(skeleton)), {k: v.clone() for k, v in tensors.items()})
    _, fresh = _objective(cfg, seed=1)
    fresh.load_state_dict(state)
    for a, b in zip(obj.discriminator.state_dict().values(),
                    fresh.discriminator.state_dict().values()):
        assert torch.equal(a, b)
    sa, sb = obj.disc_optimizer.state_dict(), fresh.disc_optimizer.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for k in sa["state"]:
        for name in sa["state"][k]:
            assert torch.equal(sa["state"][k][name], sb["state"][k][name])
    assert torch.equal(obj.lecam_real, fresh.lecam_real) and fresh.lecam_initialized
    assert fresh.disc_steps == obj.disc_steps == 2


# ---- the training loop (method "gan") -----------------------------------------------------------

@pytest.fixture
def loop_cfg(tiny_cfg, tmp_path):
    pytest.importorskip("swycc.data.images")
    import numpy as np
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 44, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return _gan_cfg(tiny_cfg, **{"loss.adversarial_start": 1, "data.path": str(d)})


def _run_state(run):
    from swycc.train.checkpoint import CheckpointDir

    return CheckpointDir(run).load()


def test_tiny_gan_run_is_finite_and_resumes_exactly(loop_cfg, tmp_path):
    from swycc.train.autoencoder_task import train_autoencoder as train

    res = train(loop_cfg, tmp_path / "a", max_steps=4, progress=False)
    assert res.step == 4 and res.nonfinite_steps == 0
    recs = [json.loads(ln) for ln in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(v) for r in recs for v in r.values() if isinstance(v, float))
    assert "loss_d" not in recs[0] and "loss_d" in recs[-1]  # D switched on at step 1
    # killed after step 2, then the same command again
    train(loop_cfg, tmp_path / "b", max_steps=2, progress=False)
    train(loop_cfg, tmp_path / "b", max_steps=4, progress=False)
    a, b = _run_state(tmp_path / "a"), _run_state(tmp_path / "b")
    assert a["objective"]["disc_steps"] == b["objective"]["disc_steps"] == 3
    _, ta = flatten({k: a[k] for k in ("model", "optimizer", "ema", "objective")})
    _, tb = flatten({k: b[k] for k in ("model", "optimizer", "ema", "objective")})
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.allclose(ta[k], tb[k], atol=1e-6), k
    # the exported GAN model decodes in one deterministic step
    m = Autoencoder.from_pretrained(tmp_path / "a" / "export")
    x = _batch(1, 24)
    assert torch.equal(m.reconstruct(x), m.reconstruct(x)) and m.reconstruct(x).shape == x.shape


# ---- DDP: autograd.grad for the adaptive weight inside the wrapped step, two processes -----------

def _two_players_steps(cfg, x, rank=0, world=1, steps=2):
    model, obj = _objective(cfg)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        obj.wrap(lambda m: DDP(m))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # SGD: Adam would amplify fp noise
    rows = torch.arange(rank, len(x), world)  # the loop's split: rank r takes r, r + world, ...
    lams = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        loss, logs = obj.micro_loss(x[rows], step, rows, len(x))
        loss.backward()
        opt.step()
        obj.after_step(x[rows], step)
        lams.append(logs["adv_weight"].item())
    return {"model": model.state_dict(), "disc": obj.discriminator.state_dict(),
            "lecam": torch.stack([obj.lecam_real, obj.lecam_fake]), "lams": lams}


def _ddp_worker(rank, world, port, cfg_json, out):
    import os

    import torch.distributed as dist

    from swycc.config import Config

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    res = _two_players_steps(Config.from_json(cfg_json), _batch(4), rank, world)
    if rank == 0:
        torch.save(res, out)
    # Both ranks leave together: a rank tearing gloo down while its peer is still busy (rank 0
    # saving) once aborted rank 1 on CI ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)  # skip interpreter teardown of gloo's threads; the result is already on disk


@pytest.mark.parametrize("r1", [0.0, 1.0])
def test_two_process_ddp_matches_one_process(tiny_cfg, tmp_path, r1):
    import socket

    import torch.multiprocessing as mp

    cfg = _gan_cfg(tiny_cfg, **{"loss.r1_weight": r1})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, cfg.to_json(), str(tmp_path / "ddp.pt")), nprocs=2)
    two = torch.load(tmp_path / "ddp.pt")
    one = _two_players_steps(cfg, _batch(4))
    assert one["lams"] == pytest.approx(two["lams"], rel=1e-4)  # the global-batch lambda
    for part in ("model", "disc"):
        for k in one[part]:
            assert torch.allclose(one[part][k], two[part][k], atol=1e-5), (part, k)
    assert torch.allclose(one["lecam"], two["lecam"], atol=1e-6)
