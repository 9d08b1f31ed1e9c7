"""Issue 23, items 2 to 5: outputs inside inputs and data that changed under a run, disk full,
only regular files as weights, crafted checkpoints. (Items 6 to 9: test_hardening3.py.)"""

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from swycc.autoencoders.base import Autoencoder
from hardening_common import TINY, error_line, input_folder, png

from swycc.cli import main
from swycc.config import ConfigError, Config, get_preset, override, shrink

ROOT = Path(__file__).resolve().parents[1]
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return input_folder(tmp_path_factory.mktemp("hard2"))


_png, _err = png, error_line


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def _step(out: Path) -> int:
    return int((out / "checkpoints" / "latest").read_text().split("-")[1])


# ---- item 2: an output inside the input; data that changed between a run and its resume ----

def test_2_out_inside_the_data_is_refused_up_front(files, tmp_path, capsys):
    model = str(files / "model")
    data, classes = files / "folder", files / "classes"
    cases = [
        ["train", *TINY, "--data", str(data), "--out", str(data / "run"), "--max-steps", "1"],
        ["train", *TINY, "--data", str(data), "--out", str(data), "--max-steps", "1"],
        ["encode-dataset", "--checkpoint", model, "--data", str(classes), "--out",
         str(classes / "lat"), "--no-progress"],
        ["eval", "--checkpoint", model, "--data", str(data), "--out", str(data / "ev"),
         "--metrics", "psnr", "--no-progress"],
        ["experiment", "steps", "--checkpoint", model, "--eval-data", str(data), "--out",
         str(data / "sweep" / "x"), "--no-progress"],
        ["ship-check", "--candidate", model, "--data", str(data), "--out", str(data / "sc")],
        ["distill-report", "--teacher", model, "--student", model, "--eval-data", str(data),
         "--out", str(data / "rep"), "--no-progress"],
        ["eval-generation", "--dit", model, "--reference", str(data), "--out",
         str(data / "g")],
    ]
    before = _tree(files)
    for argv in cases:
        assert main(argv) == 2, argv
        err = _err(capsys)
        assert "inside" in err and "--out" in err, (argv, err)
        assert _tree(files) == before, argv


def test_2_data_that_changed_before_a_resume_is_refused(files, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "run"
    for i in range(4):
        _png(data / f"{i}.png", seed=i)
    argv = ["train", *TINY, "--data", str(data), "--out", str(out), "--max-steps", "1"]
    assert main(argv) == 0
    assert json.loads((out / "data_manifest.json").read_text())["files"]
    _png(data / "new.png", seed=9)  # a file added
    assert main(argv[:-1] + ["2"]) == 2
    err = _err(capsys)
    assert "changed" in err and "new.png" in err and "--allow-data-change" in err
    assert _step(out) == 1
    _png(data / "0.png", 50, 40, seed=0)  # a file resized (another size on disk)
    (data / "new.png").unlink()
    assert main(argv[:-1] + ["2"]) == 2
    assert "0.png" in _err(capsys)
    assert main(argv[:-1] + ["2", "--allow-data-change"]) == 0
    assert _step(out) == 2
    assert main(argv[:-1] + ["3"]) == 0  # the new manifest is the run's now
    assert _step(out) == 3


# ---- item 3: disk full ----

def _disk_full(monkeypatch, exc):
    import safetensors.torch

    def full(*args, **kwargs):
        raise exc
    monkeypatch.setattr(safetensors.torch, "save_file", full)


def test_3_disk_full_in_training_is_one_line_nothing_half_written_and_resumable(
        files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["train", *TINY, "--data", str(files / "folder"), "--out", str(out), "--max-steps",
            "1"]
    with monkeypatch.context() as m:
        _disk_full(m, OSError(errno.ENOSPC, "No space left on device"))
        assert main(argv) == 2
    err = _err(capsys)
    assert "no space left" in err.lower() and "re-run" in err
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name or ".part" in p.name]
    assert leftovers == []
    assert not list((out / "checkpoints").glob("step-*")) if (out / "checkpoints").exists() \
        else True
    assert main(argv) == 0  # space freed: the same command goes on
    assert _step(out) == 1


def test_3_disk_full_in_encode_is_one_line_and_writes_nothing(files, tmp_path, capsys,
                                                              monkeypatch):
    from safetensors import SafetensorError

    out = tmp_path / "z.safetensors"
    message = ('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
               'message: "No space left on device" })')
    _disk_full(monkeypatch, SafetensorError(message))
    assert main(["encode", str(files / "img.png"), "--checkpoint", str(files / "model"),
                 "--out", str(out), "--no-progress"]) == 2
    assert "no space left" in _err(capsys).lower()
    assert list(tmp_path.iterdir()) == []


# ---- item 4: only regular files are opened as checkpoints and weights ----

def test_4_a_fifo_as_the_weights_file_is_refused_without_hanging(files, tmp_path):
    bad = tmp_path / "fifo-model"
    bad.mkdir()
    os.mkfifo(bad / "model.safetensors")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for argv in (["reconstruct", str(files / "img.png"), "--checkpoint", str(bad), "--out",
                  str(tmp_path / "o"), "--no-progress"],
                 ["distill", "--teacher", str(bad), "--out", str(tmp_path / "d")]):
        res = subprocess.run([sys.executable, "-m", "swycc", *argv], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith("swycc: error:") and "FIFO" in last, last
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists()


def test_4_directories_sockets_and_devices_are_refused_by_name(files, tmp_path, capsys):
    as_dir = tmp_path / "dir-model"
    (as_dir / "model.safetensors").mkdir(parents=True)
    sock_dir = tmp_path / "s"
    sock_dir.mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_dir / "model.safetensors"))
    try:
        for path, word in [(as_dir, "directory"), (sock_dir, "socket"),
                           ("/dev/null", "device")]:
            assert main(["info", "--checkpoint", str(path)]) == 2
            err = _err(capsys)
            assert word in err and "not a regular file" in err, err
    finally:
        s.close()


# ---- item 5: crafted checkpoints ----

@pytest.mark.parametrize("key, value", [
    ("model.encoder.base_channels", 200_000), ("model.decoder.base_channels", 200_000),
    ("model.unet.base_channels", 200_000), ("model.encoder.num_res_blocks", 100_000),
    ("model.encoder.num_mid_blocks", 100_000), ("model.unet.num_res_blocks", (1, 100_000, 1)),
    ("model.encoder.channel_mults", (1,) * 40), ("model.unet.channel_mults", (1, 2, 100_000)),
    ("model.image_size", 10 ** 7), ("model.encoder.latent_channels", 10 ** 6),
    ("model.unet.emb_channels", 10 ** 7), ("model.unet.input_patch", 1000),
    ("loss.disc_base_channels", 10 ** 6), ("loss.disc_layers", 1000),
    ("train.batch_size", 10 ** 9), ("train.seed", 2 ** 64),
    ("train.total_steps", 10 ** 30), ("sampling.steps", 10 ** 9),
    ("sampling.samples", 10 ** 6), ("data.held_out", 10 ** 9),
])
def test_5_config_values_have_ceilings(key, value):
    with pytest.raises(ConfigError, match=key.split(".")[-1]):
        override(get_preset("tiny"), key, value)


def test_5_every_preset_fits_under_the_ceilings():
    from swycc.config import PRESETS

    for name, cfg in PRESETS.items():
        assert Config.from_json(cfg.to_json()) == cfg, name


def _crafted(files, tmp_path, config: dict | str, name="crafted.safetensors") -> Path:
    src = files / "model" / "model.safetensors"
    out = tmp_path / name
    text = config if isinstance(config, str) else json.dumps(config)
    save_file(load_file(str(src)), str(out), metadata={"format": "swycc", "config": text})
    return out


def test_5_weight_shapes_are_checked_before_any_network_is_built(files, tmp_path, monkeypatch):
    from swycc.autoencoders.base import CheckpointError

    cfg = shrink(get_preset("tiny"))
    big = override(cfg, "model.unet.base_channels", 512).to_dict()
    file = _crafted(files, tmp_path, big)
    devices = []
    real = Autoencoder.__init__

    def spy(self, config):
        devices.append(torch.empty(()).device.type)
        real(self, config)
    monkeypatch.setattr(Autoencoder, "__init__", spy)
    with pytest.raises(CheckpointError, match="shape"):
        Autoencoder.from_pretrained(file)
    assert devices and set(devices) == {"meta"}, devices


def test_5_deep_json_nesting_is_a_one_line_error(files, tmp_path, capsys):
    from swycc.io.latents import load_latents

    deep = "[" * 100_000 + "]" * 100_000
    file = _crafted(files, tmp_path, deep)
    assert main(["info", "--checkpoint", str(file)]) == 2
    assert "nest" in _err(capsys)
    with pytest.raises(ConfigError, match="nest"):
        Config.from_json('{"model": ' * 100 + "{}" + "}" * 100)
    stats = tmp_path / "stats.safetensors"
    save_file(load_file(str(files / "model" / "model.safetensors")), str(stats),
              metadata={"format": "swycc", "config": shrink(get_preset("tiny")).to_json(),
                        "latent_stats": deep})
    assert main(["info", "--checkpoint", str(stats)]) == 0  # info reads no statistics
    capsys.readouterr()
    assert main(["reconstruct", str(files / "img.png"), "--checkpoint", str(stats), "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    assert "nest" in _err(capsys)
    lat = tmp_path / "z.safetensors"
    save_file({"z.000000": torch.zeros(2, 2, 2)}, str(lat),
              metadata={"format": "swycc-latents", "config": "{}", "entries": deep})
    with pytest.raises(ValueError, match="nest"):
        load_latents(lat, 2, 4)


def test_5_a_huge_config_in_a_checkpoint_fails_fast(files, tmp_path, capsys):
    cfg = shrink(get_preset("tiny")).to_dict()
    cfg["model"]["unet"]["num_res_blocks"] = [1, 100_000, 1]
    file = _crafted(files, tmp_path, cfg)
    t = time.monotonic()
    assert main(["reconstruct", str(files / "img.png"), "--checkpoint", str(file), "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    assert "num_res_blocks" in _err(capsys)
    assert time.monotonic() - t < 5
