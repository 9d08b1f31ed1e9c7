"""`swycc photoset` as a CLI verb, end to end on hand-made .deb files, and what it must refuse or
skip: packages dpkg-deb rejects, package names that climb out of the output folder, links out of
a package, decompression bombs (issue 23, item 1)."""

import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from swycc.cli import main as cli_main
from swycc.data.photoset import PhotoSetConfig, build_photo_set

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def photo(seed: int, w: int = 160, h: int = 120) -> Image.Image:
    """A smooth random colour field plus sensor-like noise: the builder's heuristic calls it a
    photo (see tests/test_photoset.py)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(30, 225, size=(4, 6, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float64)
    return Image.fromarray(np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255)
                           .astype(np.uint8))


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid tiny PNG whose header claims width x height pixels (IHDR rewritten, CRC fixed)."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _tar_gz(members: list[tuple[str, str, bytes | str | None]]) -> bytes:
    """(name, kind, payload) with kind file (bytes), dir, or link (target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
    return buf.getvalue()


def raw_deb(path: Path, package: str, members: list) -> Path:
    """A .deb written byte by byte (ar archive of debian-binary, control.tar.gz, data.tar.gz), so
    it can hold what ``dpkg-deb -b`` would refuse to build: bad names, ``../`` members."""
    control = (f"Package: {package}\nVersion: 1.0\nArchitecture: all\n"
               "Maintainer: x <x@x.invalid>\nDescription: test\n").encode()
    parts = [("debian-binary", b"2.0\n"),
             ("control.tar.gz", _tar_gz([("./control", "file", control)])),
             ("data.tar.gz", _tar_gz(members))]
    out = [b"!<arch>\n"]
    for name, data in parts:
        out += [f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode(), data,
                b"\n" if len(data) % 2 else b""]
    path.write_bytes(b"".join(out))
    return path


def real_deb(tmp_path: Path, package: str, n_photos: int) -> Path:
    """A .deb built by ``dpkg-deb -b`` with n photos and a DEP-5 copyright file."""
    root = tmp_path / f"{package}-root"
    pics = root / "usr/share/backgrounds" / package
    pics.mkdir(parents=True)
    for i in range(n_photos):
        photo(i).save(pics / f"photo{i}.png")
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2024 A. Photographer\nLicense: CC0-1.0\n")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@x.invalid>\n"
        "Description: test\n")
    deb = tmp_path / f"{package}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb


def run_verb(capsys, *args: str) -> tuple[int, str, str]:
    status = cli_main(["photoset", "--quiet", *args])
    out, err = capsys.readouterr()
    return status, out, err


@needs_dpkg
def test_photoset_verb_builds_the_set_and_exits_0(tmp_path, capsys):
    deb = real_deb(tmp_path, "tiny-backgrounds", 4)
    out = tmp_path / "set"
    status, said, err = run_verb(capsys, "--out", str(out), "--holdout-fraction", "0.25",
                                 "--max-short-side", "64", str(deb))
    assert status == 0, err
    m = json.loads((out / "sources.json").read_text())
    counts = m["packages"]["tiny-backgrounds"]
    assert (counts["photos"], counts["train"], counts["test"]) == (4, 3, 1)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(f["output"] for f in m["files"] if f["output"])
    assert all(min(Image.open(out / w).size) == 64 for w in written)
    assert {f["licence"]["licence"] for f in m["files"]} == {"CC0-1.0"}
    assert "tiny-backgrounds: 4 files, 4 pictures (4 photos" in said
    assert not (out / ".extract").exists()


@needs_dpkg
@pytest.mark.parametrize("case", ["not-a-deb", "dotdot-member", "write-through-link",
                                  "climbing-name"])
def test_a_package_dpkg_deb_refuses_is_one_error_line_and_exit_2(tmp_path, capsys, case):
    png = png_bytes(photo(0))
    if case == "not-a-deb":
        deb = tmp_path / "x.deb"
        deb.write_bytes(b"this is not an ar archive\n")
    elif case == "dotdot-member":
        deb = raw_deb(tmp_path / "x.deb", "dotdot", [("./usr/", "dir", None),
                                                     ("./../escaped.png", "file", png)])
    elif case == "write-through-link":
        deb = raw_deb(tmp_path / "x.deb", "through", [
            ("./usr/", "dir", None), ("./usr/link", "link", str(tmp_path / "target")),
            ("./usr/link/escaped.png", "file", png)])
        (tmp_path / "target").mkdir()
    else:
        deb = raw_deb(tmp_path / "x.deb", "../../x", [("./usr/", "dir", None),
                                                      ("./usr/a.png", "file", png)])
    out = tmp_path / "deep/set"
    status, _, err = run_verb(capsys, "--out", str(out), str(deb))
    assert status == 2
    assert err.startswith("swycc: error: ") and err.count("\n") == 1, err
    assert str(deb) in err
    assert not out.exists()  # nothing written
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == []  # nothing escaped anywhere
    assert not (tmp_path / "x").exists()


def test_links_out_of_the_package_are_skipped_counted_and_never_read(tmp_path):
    private = tmp_path / "home/private.png"
    private.parent.mkdir(parents=True)
    photo(9).save(private)
    root = tmp_path / "evil-backgrounds"
    pics = root / "usr/share/backgrounds"
    pics.mkdir(parents=True)
    photo(1).save(pics / "fine.png")
    os.symlink("fine.png", pics / "alias.png")  # inside the package: folded, as before
    os.symlink(private, pics / "secret.png")
    os.symlink("/etc/passwd", pics / "passwd.png")
    os.symlink("../../../../home/private.png", pics / "relative.png")
    os.symlink("loop.png", pics / "loop.png")
    doc = root / "usr/share/doc/evil-backgrounds"
    doc.mkdir(parents=True)
    os.symlink("/etc/passwd", doc / "copyright")  # a licence record out of the package
    out = tmp_path / "set"
    m = build_photo_set([root], out, PhotoSetConfig(holdout_fraction=0.0), progress=False)
    skipped = sorted(m["links_out_of_package_skipped"])
    assert skipped == [f"evil-backgrounds/usr/share/backgrounds/{n}.png"
                       for n in ("loop", "passwd", "relative", "secret")]
    assert [(f["path"], f["aliases"]) for f in m["files"]] == [
        ("usr/share/backgrounds/fine.png", ["usr/share/backgrounds/alias.png"])]
    assert m["skipped"] == []  # never opened, so never an unreadable-file entry
    assert [p.name for p in (out / "train").iterdir()] == [
        "evil-backgrounds_fine.png"]
    text = (out / "sources.json").read_text() + (out / "SOURCES.md").read_text()
    assert "root:" not in text and "no copyright file" in text


def test_a_decompression_bomb_or_unreadable_image_is_skipped_and_counted(tmp_path):
    root = tmp_path / "bomb-backgrounds"
    pics = root / "usr/share/backgrounds"
    pics.mkdir(parents=True)
    photo(1).save(pics / "fine.png")
    (pics / "bomb.png").write_bytes(bomb_png())
    (pics / "cut.png").write_bytes(png_bytes(photo(2))[:200])
    m = build_photo_set([root], tmp_path / "set", PhotoSetConfig(holdout_fraction=0.0),
                        progress=False)
    errors = {Path(s["file"]).name: s["error"] for s in m["skipped"]}
    assert sorted(errors) == ["bomb.png", "cut.png"]
    assert errors["bomb.png"].startswith("DecompressionBombError")
    assert [f["path"] for f in m["files"]] == ["usr/share/backgrounds/fine.png"]
    assert m["packages"]["bomb-backgrounds"]["train"] == 1
