"""swycc exports behind diffusers' VAE interface (swycc.integrations.diffusers)."""

import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import DDIMScheduler  # noqa: E402

from swycc.autoencoders.base import Autoencoder  # noqa: E402
from swycc.integrations.diffusers import AutoencoderSWYCC  # noqa: E402
from swycc.autoencoders.latent_stats import LatentStats  # noqa: E402

STATS = LatentStats((0.5, -0.25), (2.0, 0.5), images=8, data="test")


def tiny_model(method: str = "swycc", seed: int = 0) -> Autoencoder:
    """A kind on the tiny preset at test width, weights ~ N(0, 0.05) (non-zero outputs)."""
    from swycc.autoencoders.kinds import with_method
    from swycc.config import get_preset, shrink

    torch.manual_seed(seed)
    model = Autoencoder.from_config(with_method(shrink(get_preset("tiny")), method))
    for p in model.parameters():
        if p.ndim > 1:
            torch.nn.init.normal_(p, std=0.05)
    return model.eval()


@pytest.fixture
def export(tmp_path):
    def make(method="swycc", stats=STATS):
        model = tiny_model(method)
        model.latent_stats = stats
        path = tmp_path / f"export-{method}"
        model.save_pretrained(path)
        return path, Autoencoder.from_pretrained(path)

    return make


@pytest.mark.parametrize("method", ["swycc", "gan", "dgae"])
def test_round_trip_matches_swycc_api(export, method):
    path, model = export(method)
    vae = AutoencoderSWYCC.from_swycc(path)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    dist = vae.encode(x).latent_dist
    z = model.encode(x)
    torch.testing.assert_close(dist.mode(), z, rtol=0, atol=1e-6)
    g = torch.Generator().manual_seed(3)
    if method == "dgae":  # q(z|x) is a Gaussian: samples spread around the mean
        s = dist.sample(g)
        assert not torch.equal(s, dist.mode()) and float(dist.std.detach().min()) > 0
        mean, logvar = model.posterior(x)
        torch.testing.assert_close(dist.logvar, logvar)
    else:  # a point mass: sample() is the mode, KL 0
        assert torch.equal(dist.sample(g), dist.mode()) and float(dist.std.abs().max()) == 0
    out = vae.decode(z, generator=torch.Generator().manual_seed(0),
                     num_inference_steps=2, guidance_scale=0.5).sample
    ref = model.decode(z, steps=2, guidance=0.5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    # slicing decodes image by image: the same images with one generator per image
    vae.enable_slicing()
    gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
    sliced = vae.decode(z, generator=gens, num_inference_steps=2).sample
    for i, seed in enumerate((5, 6)):
        one = model.decode(z[i:i + 1], steps=2, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(sliced[i:i + 1], one, rtol=0, atol=1e-6)


def test_config_scaling_and_save_reload_keep_dtype(export, tmp_path):
    path, model = export()
    vae = AutoencoderSWYCC.from_swycc(path)
    c = vae.config
    assert c.latents_mean == [0.5, -0.25] and c.latents_std == [2.0, 0.5]
    # whole-tensor moments of two channels with these per-channel ones
    mean = (0.5 - 0.25) / 2
    var = (2.0 ** 2 + 0.5 ** 2 + 0.25 + 0.0625) / 2 - mean ** 2
    assert c.shift_factor == pytest.approx(mean) and c.scaling_factor == pytest.approx(var ** -0.5)
    assert 2 ** (len(c.block_out_channels) - 1) == model.config.model.encoder.downsample
    vae.save_pretrained(tmp_path / "vae")
    assert (tmp_path / "vae" / "config.json").is_file()
    assert (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    again = AutoencoderSWYCC.from_pretrained(tmp_path / "vae", torch_dtype=torch.bfloat16)
    assert again.dtype == torch.bfloat16 and again.config.scaling_factor == c.scaling_factor
    assert again.model.latent_stats == model.latent_stats
    assert again.model.config == model.config
    for (k, a), (_, b) in zip(vae.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a.bfloat16(), b), k
    # bf16 end to end: latents and images in bf16, close to the float32 model
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    z16 = again.encode(x.bfloat16()).latent_dist.mode()
    assert z16.dtype == torch.bfloat16
    img = again.decode(z16, generator=torch.Generator().manual_seed(0),
                       num_inference_steps=2).sample
    assert img.dtype == torch.bfloat16 and img.shape == (1, 3, 32, 32)
    ref = model.decode(model.encode(x), steps=2, generator=torch.Generator().manual_seed(0))
    assert float((img.float() - ref).abs().mean()) < 0.05
    # a local swycc export through from_pretrained: the same model
    direct = AutoencoderSWYCC.from_pretrained(path)
    assert direct.config.swycc_config == vae.config.swycc_config


def test_tiling_is_explicit(export):
    path, model = export("gan")
    vae = AutoencoderSWYCC.from_swycc(path)
    vae.tile_sample_min_size, vae.tile_overlap = 32, 16
    z = model.encode(torch.rand(1, 3, 64, 64) * 2 - 1)
    whole = vae.decode(z).sample
    vae.enable_tiling()
    tiled = vae.decode(z).sample
    torch.testing.assert_close(tiled, model.decode(z, tile=True, tile_size=32, tile_overlap=16))
    assert not torch.equal(tiled, whole)  # GroupNorm sees each tile: a different result
    vae.disable_tiling()
    assert torch.equal(vae.decode(z).sample, whole)


def test_ddim_scheduler_loop_decodes_through_the_vae(export):
    """A latent diffusion loop as a diffusers user writes it: DDIMScheduler over a tiny random
    denoiser in normalised latent space, then vae.decode(latents / scaling_factor + shift)."""
    path, model = export()
    vae = AutoencoderSWYCC.from_swycc(path)
    sf, shift = vae.config.scaling_factor, vae.config.shift_factor
    torch.manual_seed(0)
    denoiser = torch.nn.Conv2d(2, 2, 3, padding=1)
    sched = DDIMScheduler(num_train_timesteps=100)
    sched.set_timesteps(5)
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 2, 4, 4, generator=g) * sched.init_noise_sigma
    with torch.no_grad():
        for t in sched.timesteps:
            eps = denoiser(sched.scale_model_input(latents, t))
            latents = sched.step(eps, t, latents).prev_sample
    z = latents / sf + shift
    images = vae.decode(z, generator=torch.Generator().manual_seed(1),
                        num_inference_steps=2).sample
    assert images.shape == (2, 3, 32, 32) and images.abs().max() <= 1
    torch.testing.assert_close(images, model.decode(z, steps=2,
                                                    generator=torch.Generator().manual_seed(1)))
    # the training side of that loop: encoded images scaled to roughly unit variance
    x = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    scaled = (vae.encode(x).latent_dist.sample() - shift) * sf
    torch.testing.assert_close(scaled / sf + shift, model.encode(x), rtol=0, atol=1e-6)


def test_dit_pipeline_uses_it_as_its_vae(export):
    """diffusers' own DiTPipeline with a tiny random DiT and the swycc VAE."""
    from diffusers import DiTPipeline, DiTTransformer2DModel, DPMSolverMultistepScheduler

    path, model = export("gan")  # a deterministic decoder: the pipeline passes no generator
    vae = AutoencoderSWYCC.from_swycc(path)
    torch.manual_seed(0)
    dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=2,
                                out_channels=2, num_layers=1, sample_size=4, patch_size=2,
                                num_embeds_ada_norm=1000, norm_num_groups=2).eval()
    pipe = DiTPipeline(transformer=dit, vae=vae, scheduler=DPMSolverMultistepScheduler())
    pipe.set_progress_bar_config(disable=True)
    out = pipe(class_labels=[1, 2], num_inference_steps=3, guidance_scale=1.0,
               generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert out.shape == (2, 3, 32, 32) and 0 <= float(out.min()) and float(out.max()) <= 1
    # the pipeline's images are the swycc decoder's on its latents: redo its last step
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 2, 4, 4, generator=g)
    pipe.scheduler.set_timesteps(3)
    for t in pipe.scheduler.timesteps:
        with torch.no_grad():
            eps = dit(latents, timestep=t.expand(2), class_labels=torch.tensor([1, 2])).sample
            latents = pipe.scheduler.step(eps, t, latents).prev_sample
    ref = (model.decode(latents / vae.config.scaling_factor) / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_tiled_encode_of_a_gaussian_posterior(export):
    path, model = export("dgae")
    vae = AutoencoderSWYCC.from_swycc(path)
    vae.tile_sample_min_size, vae.tile_overlap = 32, 16
    vae.enable_tiling()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        mode = vae.encode(x).latent_dist.mode()
        want = model.encode(x, tile=True, tile_size=32, tile_overlap=16)
    torch.testing.assert_close(mode, want, rtol=0, atol=1e-6)
