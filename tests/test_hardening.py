"""Issue 11, one test per item: run-directory lock, failed starts, output names, latents
checks, divergence, huge images, one-line errors, partial outputs, skip counts, corrupt
checkpoints, DINOv2 weights without code execution, SIGTERM exit status."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from swycc.autoencoders.base import Autoencoder
from hardening_common import TINY, error_line, png

from swycc.cli import main
from swycc.cli.args import EXIT_DIVERGED, EXIT_PREEMPTED
from swycc.config import get_preset, shrink
from swycc.io.latents import LatentEntry, save_latents

ROOT = Path(__file__).resolve().parents[1]
_png = png


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny exported model, two images and a four-image training folder."""
    root = tmp_path_factory.mktemp("hard")
    imgs = [_png(root / "img0.png", 24, 36, 0), _png(root / "img1.png", 33, 20, 1)]
    for i in range(4):
        _png(root / "folder" / f"{i}.png", 40, 40, 10 + i)
    torch.manual_seed(0)
    Autoencoder.from_config(shrink(get_preset("tiny"))).save_pretrained(root / "model")
    return root, imgs


_err = error_line


def _exit_code(argv) -> int:
    """main()'s status, including argparse's SystemExit for a bad option value."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@contextmanager
def _live_train(out: Path, data: Path):
    """A ``swycc train`` subprocess into ``out``, from when it holds the run's lock and has
    written its first checkpoint; killed on the way out if still running."""
    log = out.parent / f"{out.name}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "swycc", "train", *TINY, "--data", str(data), "--out", str(out),
           "--time-budget", "300", "--set", "train.checkpoint_every=1"]
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not ((out / ".lock").exists() and (out / "checkpoints" / "latest").exists()):
            assert proc.poll() is None, f"train exited with {proc.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"no checkpoint after 120 s: {log.read_text()}"
            time.sleep(0.05)
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _latest_step(out: Path) -> int:
    return int((out / "checkpoints" / "latest").read_text().strip().split("-")[1])


# ---- 1. one live run per directory; a killed run leaves no lock -------------------------------

def test_01_second_live_run_is_refused_and_a_killed_run_leaves_no_lock(files, tmp_path, capsys):
    root, _ = files
    out = tmp_path / "run"
    args = ["train", *TINY, "--data", str(root / "folder"), "--out", str(out), "--max-steps", "1"]
    with _live_train(out, root / "folder") as (proc, _):
        assert main(args) == 2
        assert "in use by a live run" in _err(capsys)
        proc.kill()  # SIGKILL: no handler, no cleanup
        proc.wait(timeout=30)
    assert (out / ".lock").exists()  # the file stays; the kernel dropped the flock
    assert main(args) == 0
    assert "stopped at step" in capsys.readouterr().out


# ---- 2. a failed start writes nothing --------------------------------------------------------

def test_02_failed_starts_leave_no_trace(files, tmp_path, capsys):
    root, _ = files
    out = tmp_path / "run"
    base = ["train", *TINY, "--out", str(out), "--max-steps", "1"]
    (tmp_path / "empty").mkdir()
    for bad, needle in [(["--data", str(tmp_path / "typo")], "no such image folder"),
                        (["--data", str(tmp_path / "empty")], "no images found"),
                        (["--set", "model.method=xyz"], "model.method")]:
        assert main([*base, *bad]) == 2
        assert needle in _err(capsys)
        assert not out.exists()
    assert _exit_code([*base, "--batch-size", "0"]) == 2
    assert "--batch-size" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--data", str(root / "folder")]) == 0  # the corrected command


# ---- 3. output names are sanitised, stay inside --out and never collide ----------------------

def test_03_output_names_stay_inside_out_and_never_collide(files, tmp_path, capsys):
    root, imgs = files
    model = Autoencoder.from_pretrained(root / "model")
    c = model.config.model.latent_channels
    names = ["../../escaped", "dup", "dup", "..", "a/b\\c", "", "DUP"]
    entries = [LatentEntry(n, (30, 30), torch.randn(c, 4, 4)) for n in names]
    z = tmp_path / "names.safetensors"
    save_latents(entries, z, model.config.to_json())
    out = tmp_path / "deep" / "er" / "dec"
    before = _tree(tmp_path)
    assert main(["decode", str(z), "--checkpoint", str(root / "model"), "--steps", "1",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 7 image(s)" in printed and "'../../escaped' is written as 'escaped'" in printed
    assert _tree(out) == {"escaped.png", "dup.png", "dup-2.png", "image.png", "c.png",
                          "image-2.png", "DUP-3.png"}  # DUP ~ dup on a case-insensitive disk
    assert _tree(tmp_path) - before - {"deep", "deep/er", "deep/er/dec"} == {
        f"deep/er/dec/{n}" for n in _tree(out)}
    # two inputs with the same stem: a.png and a.webp (and sub/a.png)
    a = _png(tmp_path / "in" / "a.png", 16, 16, 3)
    Image.open(a).save(tmp_path / "in" / "a.webp", lossless=True)
    _png(tmp_path / "in" / "sub" / "a.png", 16, 16, 4)
    srcs = [str(a), str(tmp_path / "in" / "a.webp"), str(tmp_path / "in" / "sub" / "a.png")]
    assert main(["reconstruct", *srcs, "--checkpoint", str(root / "model"), "--steps", "1",
                 "--samples", "2", "--out", str(tmp_path / "rec")]) == 0
    assert "wrote 6 image(s)" in capsys.readouterr().out
    assert _tree(tmp_path / "rec") == {f"{s}_s{k}.png" for s in ("a", "a-2", "a-3")
                                       for k in (1, 2)}


# ---- 4. latents: any float dtype, nothing non-finite, no integer tensors ---------------------

def test_04_latents_dtypes_and_non_finite_values(files, tmp_path, capsys):
    root, imgs = files
    model = Autoencoder.from_pretrained(root / "model")
    ck = ["--checkpoint", str(root / "model"), "--steps", "2", "--seed", "5"]
    z = torch.randn(model.config.model.latent_channels, 4, 4)

    def decode(tag, tensor, name="x", *extra):
        path = tmp_path / f"{tag}.safetensors"
        save_latents([LatentEntry(name, (30, 30), tensor)], path, model.config.to_json())
        return _exit_code(["decode", str(path), *ck, "--out", str(tmp_path / tag), *extra])

    assert decode("f32", z) == 0
    ref = np.asarray(Image.open(tmp_path / "f32" / "x.png"))
    assert decode("f64", z.double()) == 0  # cast to float32: the very same image
    assert np.array_equal(np.asarray(Image.open(tmp_path / "f64" / "x.png")), ref)
    assert decode("f16", z.half()) == 0 and decode("bf16", z.bfloat16()) == 0
    assert decode("int", z.long(), "ints") == 2
    msg = _err(capsys)
    assert "'ints'" in msg and "int64" in msg and not (tmp_path / "int").exists()
    bad = z.clone()
    bad[0, 1, 2], bad[1, 0, 0] = float("nan"), float("inf")
    assert decode("nan", bad, "holes") == 2
    msg = _err(capsys)
    assert "'holes'" in msg and f"2 of its {z.numel()} latent values are NaN or Inf" in msg
    assert not (tmp_path / "nan").exists()
    for g in ("nan", "inf", "-inf"):
        assert decode("g", z, "x", f"--guidance={g}") == 2
        assert "--guidance" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


# ---- 5. divergence stops the run with exit status 3 -------------------------------------------

def test_05_divergence_stops_with_exit_3(files, tmp_path, capsys, monkeypatch):
    from swycc.train.objectives import SWYCCObjective

    def nan_loss(self, x, step, rows, global_batch):
        p = next(self.model.parameters())
        return p.sum() * float("nan"), {"loss": torch.tensor(float("nan"))}

    monkeypatch.setattr(SWYCCObjective, "micro_loss", nan_loss)
    root, _ = files
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="skipped as non-finite"):
        code = main(["train", *TINY, "--data", str(root / "folder"), "--out", str(out),
                     "--max-steps", "50", "--set", "train.max_nonfinite_in_row=5"])
    assert code == EXIT_DIVERGED == 3
    assert "diverged: the last 5 steps (to step 5)" in _err(capsys)
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4 and last["nonfinite_steps"] == 4 and last["grad_norm"] is None


# ---- 6. huge images: refused up front by the verbs, skipped and counted by training ----------

def test_06_huge_images_refused_up_front_and_skipped_in_training(files, tmp_path, capsys,
                                                                 monkeypatch):
    root, imgs = files
    ck = ["--checkpoint", str(root / "model"), "--steps", "1"]
    big = _png(tmp_path / "big.png", 40, 30)  # 1,200 pixels
    for verb, out in [("reconstruct", tmp_path / "rec"), ("encode", tmp_path / "z.st")]:
        assert main([verb, str(imgs[0]), str(big), *ck, "--max-pixels", "1000",
                     "--out", str(out)]) == 2
        msg = _err(capsys)
        assert "big.png: 30x40 = 1,200 pixels is over the limit of 1,000 (--max-pixels)" in msg
        assert not out.exists()
    model = Autoencoder.from_pretrained(root / "model")
    z = tmp_path / "z.safetensors"
    c = model.config.model.latent_channels
    save_latents([LatentEntry("wide", (30, 60), torch.zeros(c, 4, 8))], z,
                 model.config.to_json())
    assert main(["decode", str(z), *ck, "--max-pixels", "2000", "--out", str(tmp_path / "d")]) == 2
    assert "decodes to 64x32 = 2,048 pixels, over the limit of 2,000" in _err(capsys)
    # training: Pillow's decompression-bomb guard, lowered; 60x60 is in its warning band and
    # 100x100 over twice the limit (Pillow's error): both skipped, counted, the run goes on
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    data = tmp_path / "data"
    for i in range(3):
        _png(data / f"ok{i}.png", 40, 40, i)
    _png(data / "warn.png", 60, 60)
    _png(data / "bomb.png", 100, 100)
    with pytest.warns(UserWarning, match="too large an image"):
        assert main(["train", *TINY, "--data", str(data), "--out", str(tmp_path / "run"),
                     "--max-steps", "2"]) == 0
    assert "files skipped: 2 (2 too large)" in capsys.readouterr().out
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["skipped_too_large"] == 2 and last["skipped_unreadable"] == 0


# ---- 7. bad options and unusable outputs: one error line, exit 2, nothing left ---------------

def test_07_bad_values_are_one_line_errors(files, tmp_path, capsys):
    root, imgs = files
    out = tmp_path / "run"
    base = ["train", *TINY, "--out", str(out), "--max-steps", "1"]
    for option in ("train.batch_size=abc", "train.lr=abc", "train.checkpoint_every=0"):
        assert main([*base, "--set", option]) == 2
        assert f"option {option.split('=')[0]}:" in _err(capsys)
    assert main([*base, "--time-budget", "-1"]) == 2
    assert "train.time_budget_s" in _err(capsys)
    bad_flags = [["--device", "bogus"], ["--max-steps", "-1"], ["--total-steps", "-5"],
                 ["--time-budget", "nan"], ["--lr", "inf"]]
    if not torch.cuda.is_available():
        bad_flags.append(["--device", "cuda"])
    for flag in bad_flags:
        assert _exit_code([*base, *flag]) == 2, flag
        assert flag[0] in capsys.readouterr().err
    assert not out.exists()
    # an output path under a regular file, and (not as root) a read-only directory
    blocker = tmp_path / "somefile"
    blocker.write_text("x")
    assert main(["encode", str(imgs[0]), "--checkpoint", str(root / "model"),
                 "--out", str(blocker / "z.safetensors")]) == 2
    assert "is a file, not a directory" in _err(capsys)
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        assert main(["encode", str(imgs[0]), "--checkpoint", str(root / "model"),
                     "--out", str(ro / "z.safetensors")]) == 2
        assert "not writable" in _err(capsys)
        ro.chmod(0o755)
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name or ".part" in p.name]
    # a run directory whose every checkpoint is truncated: one line, exit 2
    run = tmp_path / "cut"
    args = ["train", *TINY, "--data", str(root / "folder"), "--out", str(run),
            "--max-steps", "1"]
    assert main(args) == 0
    for state in (run / "checkpoints").glob("step-*/state.safetensors"):
        state.write_bytes(state.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert main([*args[:-1], "2"]) == 2
    assert "no checkpoint could be read" in _err(capsys)


# ---- 8. outputs: existing files refused, all or nothing --------------------------------------

def test_08_outputs_existing_refused_and_all_or_nothing(files, tmp_path, capsys, monkeypatch):
    root, imgs = files
    enc = ["encode", str(imgs[0]), "--checkpoint", str(root / "model")]
    (tmp_path / "adir").mkdir()
    assert main([*enc, "--out", str(tmp_path / "adir")]) == 2
    assert "is a directory" in _err(capsys)
    assert _tree(tmp_path) == {"adir"}  # no adir.tmp
    z = tmp_path / "z.safetensors"
    z.write_bytes(b"precious")
    assert main([*enc, "--out", str(z)]) == 2
    assert "exists; pass --overwrite" in _err(capsys) and z.read_bytes() == b"precious"
    assert main([*enc, "--out", str(z), "--overwrite"]) == 0 and z.read_bytes() != b"precious"
    # reconstruct: an existing output refuses the whole command, before any work
    rec = ["reconstruct", *map(str, imgs), "--checkpoint", str(root / "model"), "--steps", "1"]
    out = tmp_path / "rec"
    out.mkdir()
    (out / "img1.png").write_bytes(b"mine")
    assert main([*rec, "--out", str(out)]) == 2
    assert "img1.png: exists" in _err(capsys) and _tree(out) == {"img1.png"}
    assert main([*rec, "--out", str(z)]) == 2  # --out is a file, not a directory
    assert "not a directory" in _err(capsys)
    # the disk fills up while writing the second image: the first one is removed too, the
    # existing file is left as it was, and no temporary file remains
    import swycc.data.images

    real_save, calls = swycc.data.images.save_image, []

    def failing_save(x, path):
        calls.append(path)
        if len(calls) % 2 == 0:
            raise OSError(28, "No space left on device")
        real_save(x, path)

    monkeypatch.setattr(swycc.data.images, "save_image", failing_save)
    assert main([*rec, "--out", str(out), "--overwrite"]) == 2
    assert "No space left" in _err(capsys) and len(calls) == 2
    assert _tree(out) == {"img1.png"} and (out / "img1.png").read_bytes() == b"mine"
    assert main([*rec, "--out", str(tmp_path / "new" / "dir")]) == 2
    assert not (tmp_path / "new").exists()  # directories it made are removed as well
    monkeypatch.setattr(swycc.data.images, "save_image", real_save)
    assert main([*rec, "--out", str(out), "--overwrite"]) == 0
    assert _tree(out) == {"img0.png", "img1.png"} and (out / "img1.png").read_bytes() != b"mine"


# ---- 9. skipped files are counted in the final line and the metrics log ----------------------

def test_09_skipped_files_are_counted(files, tmp_path, capsys):
    data = tmp_path / "data"
    for i in range(4):
        _png(data / "cls" / f"{i}.png", 40, 40, i)
    (data / "cls" / "broken.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (8, 8)).save(data / "anim.gif")
    (data / "notes.txt").write_text("hello")
    os.symlink("..", data / "cls" / "up")  # a folder link that loops back
    os.symlink("self", data / "self")  # a link to itself
    os.symlink("cls", data / "again")  # the same folder reached twice
    with pytest.warns(UserWarning) as record:
        assert main(["train", *TINY, "--data", str(data), "--out", str(tmp_path / "run"),
                     "--max-steps", "2"]) == 0
    texts = " ".join(str(w.message) for w in record)
    assert "2 with an unsupported extension (.gif: 1, .txt: 1)" in texts
    assert "3 symlink loop(s)" in texts and "broken.jpg" in texts
    line = capsys.readouterr().out
    assert ("files skipped: 6 (1 unreadable, 2 with an unsupported extension, 3 symlink "
            "loop(s) or folder(s) reached twice)") in line
    rec = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {k: v for k, v in rec.items() if k.startswith("skipped_")} == {
        "skipped_unreadable": 1, "skipped_too_large": 0, "skipped_unsupported_extension": 2,
        "skipped_symlink_loop": 3, "skipped_too_small": 0}
    # counts made in a data-loader worker process reach the main process (shared memory)
    from swycc.data import ImageFolderDataset

    with pytest.warns(UserWarning):
        ds = ImageFolderDataset(data, 16, train=False)
        list(torch.utils.data.DataLoader(ds, batch_size=5, num_workers=1))
    assert ds.skipped == 1 and ds.skip_counts()["skipped_unreadable"] == 1


# ---- 10. a truncated newest checkpoint falls back to the previous one ------------------------

def test_10_truncated_latest_checkpoint_falls_back(files, tmp_path, capsys):
    root, _ = files
    run = tmp_path / "run"
    args = ["train", *TINY, "--data", str(root / "folder"), "--out", str(run),
            "--set", "train.checkpoint_every=1", "--max-steps"]
    assert main([*args, "2"]) == 0
    assert _latest_step(run) == 2
    state = run / "checkpoints" / "step-00000002" / "state.safetensors"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.warns(RuntimeWarning) as record:
        assert main([*args, "3"]) == 0
    texts = " ".join(str(w.message) for w in record)
    assert "step-00000002 is unreadable" in texts and "resuming from step-00000001" in texts
    assert "stopped at step 3" in capsys.readouterr().out
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # step 2 logged once: the record past the restored step dropped


# ---- 11. DINOv2 weights: safetensors only, never TorchScript code ----------------------------

@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script
def test_11_dinov2_reads_safetensors_only(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from swycc.metrics import weights as W
    from swycc.metrics.dinov2 import DinoV2ViT, load_dinov2

    def small():
        return DinoV2ViT(img_size=28, patch_size=14, embed_dim=16, depth=1, num_heads=2,
                         input_size=28)

    def no_jit(*a, **k):
        raise AssertionError("torch.jit.load must not run for DINOv2")

    monkeypatch.setattr(torch.jit, "load", no_jit)
    torch.manual_seed(0)
    net = small()
    good = tmp_path / "ok"
    good.mkdir()
    path = good / W.DINOV2_WEIGHTS.filename
    assert path.suffix == ".safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    with pytest.warns(UserWarning, match=W.sha256_of(path)):  # no published hash: reported
        loaded = load_dinov2(good, net=small())
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in net.state_dict().items())
    assert load_dinov2(good, net=small(), expected_sha256=W.sha256_of(path)).weights_sha256
    with pytest.raises(W.WeightsHashError):
        load_dinov2(good, net=small(), expected_sha256="0" * 64)
    # the official pickle-based .pth and a TorchScript archive under the expected name: refused
    # with the conversion recipe, without unpickling or running anything from them
    for kind in ("pth", "torchscript"):
        bad = tmp_path / kind
        bad.mkdir()
        target = bad / W.DINOV2_WEIGHTS.filename
        if kind == "pth":
            torch.save(net.state_dict(), target)
        else:
            torch.jit.script(torch.nn.Linear(2, 2)).save(str(target))
        with pytest.warns(UserWarning, match="no published SHA-256"):
            with pytest.raises(W.WeightsFormatError, match="weights_only=True") as e:
                load_dinov2(bad, net=small())
        assert "not a safetensors file" in str(e.value)
    src = Path(W.__file__).read_text() + Path(W.__file__).with_name("dinov2.py").read_text()
    assert src.count("torch.jit.load(") == 1  # only CLIP's, behind its published hash


# ---- 12. SIGTERM: checkpoint, exit status 75, the same command resumes ------------------------

def test_12_sigterm_exits_75_after_checkpoint_and_resumes(files, tmp_path, capsys):
    root, _ = files
    out = tmp_path / "run"
    with _live_train(out, root / "folder") as (proc, log):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == EXIT_PREEMPTED == 75, log.read_text()
    text = log.read_text()
    assert "(signal)" in text and "stopped by SIGTERM after writing the checkpoint" in text
    step = _latest_step(out)
    assert step >= 1 and (out / "export" / "model.safetensors").exists()
    assert main(["train", *TINY, "--data", str(root / "folder"), "--out", str(out),
                 "--max-steps", str(step + 1)]) == 0
    assert f"stopped at step {step + 1} (max_steps)" in capsys.readouterr().out
