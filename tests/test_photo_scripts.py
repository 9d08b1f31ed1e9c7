"""scripts/learning_curve.py (which export is which step, its training hours),
scripts/error_bands.py (the error split into patch means and texture) and
scripts/generalisation_gap.py (gain over bicubic)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _script(name: str = "learning_curve"):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(root: Path, logged: list[tuple[int, float]], numbered: list[int],
         checkpoints: list[int]) -> Path:
    (root / "exports").mkdir(parents=True)
    (root / "checkpoints").mkdir()
    (root / "export").mkdir()
    (root / "export" / "model.safetensors").write_bytes(b"")
    for n in numbered:
        (root / "exports" / f"step-{n:08d}").mkdir()
    for n in checkpoints:  # as CheckpointDir.save leaves them: the newest named by ``latest``
        (root / "checkpoints" / f"step-{n:08d}").mkdir()
        (root / "checkpoints" / f"step-{n:08d}" / "state.json").write_text("{}")
        (root / "checkpoints" / "latest").write_text(f"step-{n:08d}")
    (root / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "elapsed_s": e}) + "\n" for s, e in logged))
    return root


def test_a_running_runs_export_is_its_latest_checkpoint_not_its_last_logged_step(tmp_path):
    lc = _script()
    # logged every 10 steps, checkpoints every 25, numbered exports every 50; still running at 60
    run = _run(tmp_path / "a", [(10, 36.0), (20, 72.0), (50, 180.0), (60, 216.0)], [50], [50, 75])
    points = lc.stage_points([run])
    assert [(s, p.name) for s, _, p, _ in points] == [(50, "step-00000050"), (75, "export")]
    assert points[0][1] == 180.0 / 3600
    assert points[1][1] == 216.0 / 3600  # hours of the last logged step at or before 75


def test_stages_add_up_and_a_resumed_invocation_keeps_counting_hours(tmp_path):
    lc = _script()
    first = _run(tmp_path / "s1", [(10, 100.0), (20, 200.0), (30, 50.0), (40, 150.0)], [20], [40])
    second = _run(tmp_path / "s2", [(10, 360.0)], [], [10])
    points = lc.stage_points([first, second])
    assert [(s, st) for s, _, _, st in points] == [(20, 0), (40, 0), (50, 1)]
    hours = [h for _, h, _, _ in points]
    # 200 s, then 150 more after the restart; the second stage adds its 360
    assert hours == pytest.approx([200 / 3600, 350 / 3600, 710 / 3600])


def test_error_bands_split_the_mse_into_patch_means_and_texture():
    eb = _script("error_bands")
    g = torch.Generator().manual_seed(0)
    e = torch.randn(2, 3, 16, 16, generator=g)
    patch, texture = eb.bands(e)
    torch.testing.assert_close(patch + texture, e.pow(2).flatten(1).mean(1))
    flat = torch.zeros(1, 3, 16, 16)
    flat[0, 0, :8, :8] = 0.5  # one patch off by 0.5: all of it is patch error
    patch, texture = eb.bands(flat)
    assert float(patch) == pytest.approx(0.25 * 64 / (3 * 256)) and float(texture) == 0
    checker = (torch.arange(16)[:, None] + torch.arange(16)).remainder(2) * 2.0 - 1  # +-1
    patch, texture = eb.bands(checker.expand(1, 3, 16, 16))
    assert float(patch) == pytest.approx(0, abs=1e-12) and float(texture) == pytest.approx(1)


def test_generalisation_gap_gain_over_bicubic(tmp_path):
    from PIL import Image

    from swycc.metrics.photo import bicubic_from_eighth, load_square_photos

    gg = _script("generalisation_gap")
    g = torch.Generator().manual_seed(0)
    for name in ("a.png", "b.png"):
        noisy = (torch.rand(40, 60, 3, generator=g) * 255).to(torch.uint8)
        Image.fromarray(noisy.numpy()).save(tmp_path / name)

    class Bicubic:  # a "model" whose D_Initial is bicubic-from-1/8: no gain, exactly
        def reconstruct_initial(self, x):
            return bicubic_from_eighth(x)

    _, x = load_square_photos(tmp_path, 16)
    row = gg.gain(Bicubic(), x)
    assert row["photos"] == 2 and row["gain"] == 0 and row["d_initial"] == row["bicubic"]
