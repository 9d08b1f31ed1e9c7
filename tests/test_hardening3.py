"""Issue 23, items 6 to 9: resource bounds before work, no silent garbage, outputs that race,
smaller edges. (Items 2 to 5: test_hardening2.py.)"""

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from swycc.autoencoders.base import Autoencoder
from hardening_common import TINY, error_line, input_folder, png

from swycc.cli import main
from swycc.config import ConfigError, get_preset, override

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return input_folder(tmp_path_factory.mktemp("hard3"))


_png, _err = png, error_line


# ---- item 6: resource bounds before any work ----

BOUNDS = [
    ("reconstruct", ["--samples", "100000"], "--samples"),
    ("reconstruct", ["--steps", "1000000000"], "--steps"),
    ("reconstruct", ["--seed", str(2 ** 70)], "--seed"),
    ("reconstruct", ["--seed", "-1"], "--seed"),
    ("reconstruct", ["--tile-size", "1000000"], "--tile-size"),
    ("train", ["--batch-size", "1000000000"], "--batch-size"),
    ("train", ["--seed", str(2 ** 64)], "--seed"),
    ("train", ["--total-steps", str(10 ** 30)], "--total-steps"),
    ("train", ["--max-steps", str(10 ** 30)], "--max-steps"),
    ("train", ["--set", f"train.seed={2 ** 64}"], "train.seed"),
    ("eval", ["--held-out", "1000000000"], "--held-out"),
    ("eval", ["--image-size", "100000"], "--image-size"),
    ("eval", ["--batch-size", "1000000000"], "--batch-size"),
    ("eval", ["--samples", "100000"], "--samples"),
    ("eval", ["--num-images", str(10 ** 12)], "--num-images"),
    ("eval", ["--image-size", "-1"], "--image-size"),
    ("eval", ["--device", "foo"], "--device"),
    ("encode-dataset", ["--image-size", "100000"], "--image-size"),
    ("encode-dataset", ["--batch-size", "1000000000"], "--batch-size"),
    ("encode-dataset", ["--shard-size", str(10 ** 12)], "--shard-size"),
    ("generate", ["--per-class", "1000000000"], "--per-class"),
    ("generate", ["--batch-size", "1000000000"], "--batch-size"),
    ("distill-report", ["--held-out", "1000000000"], "--held-out"),
    ("experiment", ["--eval-images", str(10 ** 12)], "--eval-images"),
]


@pytest.mark.parametrize("verb, extra, option", BOUNDS)
def test_6_resource_bounds_name_the_option_before_any_work(files, tmp_path, capsys, verb,
                                                           extra, option):
    out = tmp_path / "out"
    model, img = str(files / "model"), str(files / "img.png")
    base = {"reconstruct": ["reconstruct", img, "--checkpoint", model],
            "train": ["train", *TINY, "--data", str(files / "folder")],
            "eval": ["eval", "--checkpoint", model],
            "encode-dataset": ["encode-dataset", "--checkpoint", model, "--data",
                               str(files / "classes")],
            "generate": ["generate", "--dit", model, "--classes", "0"],
            "distill-report": ["distill-report", "--student", model],
            "experiment": ["experiment", "steps", "--checkpoint", model]}[verb]
    assert main([*base, *extra, "--out", str(out)]) == 2
    assert option in _err(capsys)
    assert not out.exists()


def test_6_eval_device_cuda_on_a_cpu_build(files, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this torch build has CUDA")
    assert main(["eval", "--checkpoint", str(files / "model"), "--device", "cuda", "--out",
                 str(tmp_path / "o")]) == 2
    assert "--device" in _err(capsys)
    assert not (tmp_path / "o").exists()


# ---- item 7: no silent garbage ----

@pytest.mark.parametrize("argv", [
    ["reconstruct", "IMG", "--guidance", "1e30"],
    ["reconstruct", "IMG", "--guidance", "-50"],
    ["generate", "--dit", "M", "--classes", "0", "--guidance", "1e30"],
    ["generate", "--dit", "M", "--classes", "0", "--decoder-guidance", "1e30"],
    ["demo", "--guidance", "1e30"],
    ["distill", "--guidance", "1e30"],
    ["experiment", "guidance", "--sweep-guidance", "1", "1e30"],
    ["experiment", "generation", "--steps", "1", "--dit-guidance", "nan"],
    ["experiment", "generation", "--steps", "1", "--dit-guidance", "1e30"],
])
def test_7_guidance_beyond_the_documented_range_is_refused(files, tmp_path, capsys, argv):
    argv = [a.replace("IMG", str(files / "img.png")).replace("M", str(files / "model"))
            if a in ("IMG", "M") else a for a in argv]
    out = tmp_path / "o"
    assert main([*argv, "--out", str(out)]) == 2
    assert "guidance" in _err(capsys)
    assert not out.exists()


def test_7_guidance_range_in_configs_and_the_web_page():
    from swycc.cli.args import GUIDANCE_RANGE
    from swycc.web.reconstruction import WebInputError, check_settings

    lo, hi = GUIDANCE_RANGE
    with pytest.raises(ConfigError, match="guidance"):
        override(get_preset("tiny"), "sampling.guidance", hi * 10)
    with pytest.raises(WebInputError, match="guidance"):
        check_settings(4, 1e30, 1, 0)
    assert check_settings(4, hi, 1, 0)[1] == hi


def _tiff_as_png(path: Path, a: np.ndarray) -> Path:
    Image.fromarray(a).save(path, format="TIFF")
    return path


def test_7_float_and_int32_tiffs_under_a_png_name(tmp_path):
    from swycc.data.images import ImageError, load_image

    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    x = load_image(_tiff_as_png(tmp_path / "f.png", ramp))  # floats in [0, 1]: converted
    expect = torch.from_numpy(np.round(ramp * 255)).float() / 127.5 - 1
    assert torch.allclose(x, expect.expand(3, 8, 8), atol=1e-6)
    with pytest.raises(ImageError, match="float"):
        load_image(_tiff_as_png(tmp_path / "g.png", ramp * 1000 - 3))
    big = (np.arange(64, dtype=np.int32).reshape(8, 8) * 10_000_000)
    with pytest.raises(ImageError, match="32-bit"):
        load_image(_tiff_as_png(tmp_path / "i.png", big))
    small = (np.arange(64, dtype=np.int32).reshape(8, 8) * 1000)  # a 16-bit range: scaled
    y = load_image(_tiff_as_png(tmp_path / "j.png", small))
    assert torch.allclose(y[0], torch.from_numpy(np.round(small / 257.0)).float() / 127.5 - 1)


def test_7_a_diverging_learning_rate_ends_with_exit_3(files, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--data", str(files / "folder"), "--out", str(out),
                 "--set", "train.warmup_steps=1", "--lr", "1e4", "--max-steps", "4"]) == 3
    assert "diverged" in _err(capsys)


@pytest.mark.parametrize("verb", ["experiment-steps", "demo", "distill"])
def test_7_an_out_that_is_a_file_is_refused_before_any_work(files, tmp_path, capsys,
                                                            monkeypatch, verb):
    def no_work(*a, **k):
        raise AssertionError("work started before --out was checked")
    monkeypatch.setattr(Autoencoder, "from_pretrained", no_work)
    import swycc.train.loop
    monkeypatch.setattr(swycc.train.loop, "train", no_work)
    out = tmp_path / "file"
    out.write_text("keep")
    model = str(files / "model")
    argv = {"experiment-steps": ["experiment", "steps", "--checkpoint", model, "--no-progress"],
            "demo": ["demo", "--checkpoint", model, "--no-progress"],
            "distill": ["distill", "--teacher", model, "--no-progress"]}[verb]
    assert main([*argv, "--out", str(out)]) == 2
    assert "not a directory" in _err(capsys)
    assert out.read_text() == "keep"


# ---- item 8: outputs that race ----

@pytest.mark.parametrize("verb", ["encode", "reconstruct"])
def test_8_a_second_run_into_the_same_out_fails_clearly(files, tmp_path, capsys, monkeypatch,
                                                        verb):
    import swycc.cli.autoencoder as cli_ae

    out = tmp_path / ("z.safetensors" if verb == "encode" else "rec")
    target = out if verb == "encode" else out / "img.png"
    real = cli_ae.load_model

    def racing(args):  # the other run finishes its file while this one works
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("the other run's result")
        return real(args)
    monkeypatch.setattr(cli_ae, "load_model", racing)
    assert main([verb, str(files / "img.png"), "--checkpoint", str(files / "model"), "--out",
                 str(out), "--steps", "1", "--no-progress"]) == 2
    assert "exists" in _err(capsys) and str(target) in capsys.readouterr().err + str(target)
    assert target.read_text() == "the other run's result"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_8_encode_dataset_of_only_unreadable_images_leaves_nothing(files, tmp_path, capsys):
    data = tmp_path / "data"
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        (data / c / "x.png").write_bytes(b"not a png")
    out = tmp_path / "lat"
    assert main(["encode-dataset", "--checkpoint", str(files / "model"), "--data", str(data),
                 "--out", str(out), "--no-progress"]) == 2
    assert "no readable image" in _err(capsys)
    assert not out.exists()


def test_8_encode_dataset_sigterm_exits_75_and_resumes(files, tmp_path, capsys, monkeypatch):
    import swycc.autoencoders.base as base

    out = tmp_path / "lat"
    argv = ["encode-dataset", "--checkpoint", str(files / "model"), "--data",
            str(files / "classes"), "--out", str(out), "--shard-size", "1", "--batch-size", "1",
            "--no-progress"]
    real = base.Autoencoder.encode
    calls, outside = [], []
    previous = signal.signal(signal.SIGTERM, lambda *_: outside.append(1))  # a caller's handler

    def encode(self, *a, **k):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler pre-empting the job
        return real(self, *a, **k)
    with monkeypatch.context() as m:
        m.setattr(base.Autoencoder, "encode", encode)
        assert main(argv) == 75
    assert "SIGTERM" in capsys.readouterr().err
    shards = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(shards) == 1 and not (out / "index.json").exists()
    try:
        assert outside == [] and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert main(argv) == 0
        assert json.loads((out / "index.json").read_text())["num_latents"] == 4
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- item 9: smaller edges ----

def test_9_a_bad_perceptual_weights_file_is_one_line(files, tmp_path, capsys):
    bad = tmp_path / "w.pth"
    bad.write_bytes(b"\x80\x04garbage, not a torch file")
    bad_st = tmp_path / "w.safetensors"
    bad_st.write_bytes(b"\x00" * 7)
    for path in (bad, bad_st):
        out = tmp_path / f"run-{path.suffix[1:]}"
        assert main(["train", *TINY, "--data", str(files / "folder"), "--out", str(out),
                     "--set", "loss.perceptual_weight=0.1", "--set",
                     "loss.perceptual_net=vgg16", "--set",
                     f"loss.perceptual_weights={path}", "--max-steps", "1"]) == 2
        assert str(path) in _err(capsys)
        assert not out.exists()


def test_9_a_thin_image_in_evaluation_data_is_skipped_and_counted(files, tmp_path):
    from swycc.data.folder import ImageFolderDataset

    root = tmp_path / "eval"
    _png(root / "a.png", 40, 40)
    _png(root / "thin.png", 1, 5000)
    _png(root / "z.png", 40, 40, seed=1)
    for train, grid in ((False, 1), (False, 2), (True, 1)):
        ds = ImageFolderDataset(root, 32, train=train, eval_grid=grid)
        items = [ds[i][0] for i in range(len(ds))]
        assert all(x.shape == (3, 32, 32) for x in items)
        assert ds.skip_counts()["skipped_too_small"] == 1


def test_9_output_names_drop_leading_dashes_and_shell_hostile_characters():
    from swycc.io.outputs import safe_stem

    assert safe_stem("-rf") == "rf"
    assert safe_stem("--help") == "help"
    for name in ("a$(rm -rf ~)b", "x;y&z|w", "back`tick`", "q'u\"o", "star*?[x]", "a{b,c}!#"):
        stem = safe_stem(name)
        assert not set(stem) & set("$`;&|'\"*?[]{}()!#~<>"), stem
        assert not stem.startswith("-")
    assert safe_stem("photo 1 (2).png") == "photo 1 _2_.png"


def test_9_file_not_found_is_not_the_message_for_a_fifo_dir_or_loop(files, tmp_path, capsys):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    folder = tmp_path / "dir.png"
    folder.mkdir()
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    for path, word in [(fifo, "FIFO"), (folder, "directory"), (loop, "symlink loop"),
                       (tmp_path / "missing.png", "not found")]:
        assert main(["reconstruct", str(path), "--checkpoint", str(files / "model"), "--out",
                     str(tmp_path / "o"), "--no-progress"]) == 2
        err = _err(capsys)
        assert word in err, err
        if word != "not found":
            assert "not found" not in err
