import torch
from PIL import Image

from swycc.metrics.sample_stats import pearson, sample_statistics
from swycc.io.visual import (gradient_energy, local_gradient_energy, save_grid, save_variance_panel,
                          variance_heatmap)


def test_gradient_energy_hand_value():
    x = torch.zeros(1, 3, 4, 4)
    x[..., :, 2:] = 1.0  # one vertical edge of height 1: 4 of 12 horizontal differences are 1
    assert torch.allclose(gradient_energy(x), torch.tensor([4 / 12]))
    e = local_gradient_energy(x, window=1)
    assert e[0, :, 1].eq(1).all() and e[0, :, 0].eq(0).all()


def test_variance_heatmap_exact():
    s = torch.zeros(2, 3, 2, 2)
    s[1, :, 0, 0] = 2.0
    v = variance_heatmap(s)
    assert torch.allclose(v, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_grid_and_panel_files(tmp_path):
    rows = [[torch.zeros(3, 8, 8), torch.ones(3, 8, 8)] for _ in range(3)]
    save_grid(rows, tmp_path / "g.png", labels=["a", "b"], pad=2, title_height=14)
    assert Image.open(tmp_path / "g.png").size == (2 * 10 + 2, 14 + 3 * 10 + 2)
    save_variance_panel(torch.zeros(2, 3, 8, 8), torch.rand(2, 3, 3, 8, 8), tmp_path / "v.png")
    assert Image.open(tmp_path / "v.png").size[0] > 100


def test_sample_statistics_on_known_cases():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    blurry = torch.zeros_like(x)
    perfect = x[:, None].expand(-1, 3, -1, -1, -1)
    st = sample_statistics(x, blurry, perfect)
    assert st["psnr_samples"] > 90 and abs(st["gradient_energy_ratio_samples"] - 1) < 1e-6
    assert st["gradient_energy_ratio_initial"] == 0.0
    assert abs(pearson(torch.arange(5.0), 2 * torch.arange(5.0) + 1) - 1) < 1e-12
    assert abs(pearson(torch.arange(5.0), -torch.arange(5.0)) + 1) < 1e-12
