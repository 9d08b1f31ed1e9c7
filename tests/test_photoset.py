"""The photo set builder on tiny generated packages: no network, no apt, no real wallpapers."""

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from swycc.data.photoset import (Candidate, PhotoSetConfig, PhotoSetError, build_photo_set, choose,
                            family_key, held_out_families, main, read_overrides)
from swycc.data.photoset_images import (hamming, illustration_reason, image_statistics,
                                   perceptual_hash)
from swycc.data.photoset_licence import PackageLicences


def photo_like(seed: int, w: int = 240, h: int = 150) -> np.ndarray:
    """A smooth random colour field plus sensor-like noise: what the heuristic calls a photo."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(30, 225, size=(5, 8, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float64)
    return np.clip(smooth + rng.normal(0, 6, size=smooth.shape), 0, 255).astype(np.uint8)


def drawing(w: int = 240, h: int = 150) -> np.ndarray:
    """Flat colour shapes: what the heuristic calls an illustration."""
    a = np.full((h, w, 3), (40, 90, 200), np.uint8)
    a[h // 4: h // 2, w // 5: w // 2] = (250, 200, 30)
    yy, xx = np.mgrid[:h, :w]
    a[(yy - h * 0.6) ** 2 + (xx - w * 0.7) ** 2 < (h / 5) ** 2] = (220, 30, 60)
    return a


def save(a: np.ndarray, path: Path, size: tuple[int, int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(a)
    if size is not None:
        img = img.resize(size, Image.LANCZOS)
    img.save(path, quality=95) if path.suffix == ".jpg" else img.save(path)


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: pics/lake*.png
Copyright: 2021 A. Photographer
License: CC-BY-SA-4.0

Files: debian/*
Copyright: 2022 Packager
License: GPL-2+
"""


@pytest.fixture
def package(tmp_path) -> Path:
    """A fake extracted package: one picture at three sizes plus a link, two more photos, a
    drawing, a corrupt file, an SVG, and a copyright file."""
    root = tmp_path / "src" / "fake-backgrounds"
    pics = root / "usr/share/backgrounds/pics"
    lake = photo_like(1)
    save(lake, pics / "lake_240x150.png")
    save(lake, pics / "lake_160x100.png", (160, 100))
    save(lake, pics / "lake_96x60.jpg", (96, 60))
    os.symlink("lake_240x150.png", pics / "lake_link.png")
    save(photo_like(2), pics / "forest.jpg")
    save(photo_like(3, 200, 200), pics / "dunes.png")
    save(drawing(), pics / "logo.png")
    (pics / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (pics / "vector.svg").write_text("<svg/>")
    doc = root / "usr/share/doc/fake-backgrounds"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    return root


def by_path(m: dict) -> dict[str, dict]:
    return {f["path"].rsplit("/", 1)[1]: f for f in m["files"]}


def test_build_dedupes_classifies_and_records_sources(package, tmp_path):
    out = tmp_path / "set"
    cfg = PhotoSetConfig(holdout_fraction=0.0, max_short_side=120)
    m = build_photo_set([package], out, cfg, progress=False)
    files = by_path(m)
    # one picture at three sizes: one group, the largest kept; the link is an alias, not a file
    lake = [files[n] for n in ("lake_240x150.png", "lake_160x100.png", "lake_96x60.jpg")]
    assert len({f["group"] for f in lake}) == 1
    assert [f["kept"] for f in lake] == [True, False, False]
    assert files["lake_240x150.png"]["aliases"] == ["usr/share/backgrounds/pics/lake_link.png"]
    # distinct pictures stay distinct
    groups = {files[n]["group"] for n in ("lake_240x150.png", "forest.jpg", "dunes.png",
                                          "logo.png")}
    assert len(groups) == 4
    assert files["logo.png"]["verdict"] == "illustration"
    assert all(files[n]["verdict"] == "photo" for n in ("lake_240x150.png", "forest.jpg"))
    # bad file skipped and counted; SVG never looked at
    assert [s["file"].rsplit("/", 1)[1] for s in m["skipped"]] == ["broken.jpg"]
    assert "vector.svg" not in files
    pkg = m["packages"]["fake-backgrounds"]
    assert (pkg["files"], pkg["distinct_files"], pkg["pictures"]) == (7, 6, 4)
    # written: the three photos, shorter side capped at 120, none held out
    written = sorted(p.name for p in (out / "train").iterdir())
    assert written == ["fake-backgrounds_pics_dunes.png", "fake-backgrounds_pics_forest.png",
                       "fake-backgrounds_pics_lake_240x150.png"]
    assert Image.open(out / "train" / written[2]).size == (192, 120)
    assert files["lake_240x150.png"]["output_size"] == [192, 120]
    # licences: the last matching DEP-5 paragraph, matched on the installed path's tail
    assert files["lake_240x150.png"]["licence"]["licence"] == "CC-BY-SA-4.0"
    assert files["forest.jpg"]["licence"] == {"licence": "GPL-2+", "copyright": "2020 Someone",
                                              "matched": "copyright Files: *"}
    on_disk = json.loads((out / "sources.json").read_text())
    assert on_disk["files"] == json.loads(json.dumps(m["files"]))
    assert "CC-BY-SA-4.0" in (out / "SOURCES.md").read_text()


def test_rebuild_is_idempotent_and_removes_stale_outputs(package, tmp_path):
    out = tmp_path / "set"
    cfg = PhotoSetConfig(holdout_fraction=0.0, max_short_side=120)
    build_photo_set([package], out, cfg, progress=False)
    forest = out / "train/fake-backgrounds_pics_forest.png"
    before = forest.stat().st_mtime_ns
    build_photo_set([package], out, cfg, progress=False)
    assert forest.stat().st_mtime_ns == before  # not rewritten
    overrides = [("exclude", "fake-backgrounds/*/forest.jpg")]
    m = build_photo_set([package], out, cfg, overrides, progress=False)
    assert not forest.exists() and by_path(m)["forest.jpg"]["verdict"] == "exclude"


def test_illustration_heuristic_separates_drawing_from_noisy_photo():
    cfg = PhotoSetConfig()
    drawn = image_statistics(drawing()) | {"transparent_share": 0.0}
    photo = image_statistics(photo_like(4)) | {"transparent_share": 0.0}
    assert illustration_reason(drawn, cfg).startswith("flat regions")
    assert illustration_reason(photo, cfg) == ""
    assert photo["noise"] > 2 * cfg.min_noise and photo["flat_share"] < 0.1
    overlay = photo | {"transparent_share": 0.5}
    assert illustration_reason(overlay, cfg).startswith("transparent overlay")


def test_image_statistics_exact_on_hand_made_images():
    half = np.zeros((10, 40, 3), np.uint8)
    half[:, 20:] = 255  # 3x3 windows centred on columns 19 and 20 (of 1..38) straddle the edge
    stats = image_statistics(half)
    assert stats["flat_share"] == pytest.approx(36 / 38)
    # the gaussian (radius 4) reaches only columns 16..23: the median residual is 0
    assert stats["noise"] == pytest.approx(0.0, abs=1e-9)
    flat = image_statistics(np.full((12, 12, 3), 77, np.uint8))
    assert (flat["flat_share"], flat["noise"], flat["smooth_share"]) == (1.0, 0.0, 1.0)


def test_perceptual_hash_survives_resizing_and_tells_pictures_apart():
    a = photo_like(5).astype(np.float64) @ [0.299, 0.587, 0.114]
    small = np.asarray(Image.fromarray(a.astype(np.float32)).resize((80, 50), Image.BOX))
    other = photo_like(6).astype(np.float64) @ [0.299, 0.587, 0.114]
    assert hamming(perceptual_hash(a), perceptual_hash(small)) <= 4
    assert hamming(perceptual_hash(a), perceptual_hash(other)) >= 20
    assert hamming(0b1011, 0b0110) == 3


def test_family_keys_join_sizes_orientations_and_variants():
    sway = "usr/share/backgrounds/sway/Sway_Wallpaper_Blue_{}.png"
    assert family_key("p", sway.format("1136x640_Portrait")) == \
        family_key("p", sway.format("1920x1080")) == \
        "p/usr/share/backgrounds/sway/sway_wallpaper_blue"
    assert family_key("g", "a/adwaita-d.webp") == family_key("g", "a/adwaita-l.webp")
    kde = "usr/share/wallpapers/Flow/contents/{}/5120x2880.jpg"
    assert family_key("k", kde.format("images")) == family_key("k", kde.format("images_dark")) \
        == "k/usr/share/wallpapers/Flow"
    assert family_key("m", "x/Dune.jpg") != family_key("m", "x/Garden.jpg")


def synthetic_candidates(n_per_package: int) -> list[Candidate]:
    """Two packages, each with n families of two files (a large and a small one)."""
    cands = []
    for pkg in ("pa", "pb"):
        for i in range(n_per_package):
            for size, kept in ((4, True), (1, False)):
                c = Candidate(pkg, f"pics/pic{i}_{size}.png", Path("unused"), kept=kept,
                              verdict="photo", group=f"{pkg}/pics/pic{i}_4.png",
                              family=f"{pkg}/pics/pic{i}")
                c.analysis = {"sha256": f"{i:064x}"}
                cands.append(c)
    return cands


def test_holdout_is_deterministic_stratified_and_by_family():
    cfg = PhotoSetConfig(holdout_fraction=0.25)
    cands = synthetic_candidates(8)
    held = held_out_families(cands, cfg)
    # floor(0.25 * 8 + 1/2) = 2 families from each package, whatever the order of the files
    assert sorted(f.split("/")[0] for f in held) == ["pa", "pa", "pb", "pb"]
    shuffled = list(cands)
    random.Random(0).shuffle(shuffled)
    assert held_out_families(shuffled, cfg) == held
    assert held_out_families(cands, PhotoSetConfig(holdout_fraction=0.25, holdout_salt="x")) \
        != held  # the salt picks another split
    choose(cands, cfg)
    for c in cands:  # only kept files are written, in their family's split
        assert c.split == (("test" if c.family in held else "train") if c.kept else "")
    assert all(c.output.startswith(c.split + "/") for c in cands if c.kept)


def test_opencv_images_are_never_used(package, tmp_path):
    reserved = tmp_path / "opencv-samples"
    reserved.mkdir()
    with pytest.raises(PhotoSetError, match="reserved test set"):
        build_photo_set([reserved], tmp_path / "set", progress=False)
    save(photo_like(7), package / "usr/share/opencv4/samples/data/lena.jpg")
    m = build_photo_set([package], tmp_path / "set", PhotoSetConfig(holdout_fraction=0.0),
                        progress=False)
    assert m["reserved_left_out"] == 1
    assert not any("opencv" in f["path"] for f in m["files"])


def test_overrides_file(tmp_path):
    path = tmp_path / "overrides.txt"
    path.write_text("# comment\nphoto pkg/*  # trailing comment\nexclude pkg/a.png\n")
    assert read_overrides(path) == [("photo", "pkg/*"), ("exclude", "pkg/a.png")]
    path.write_text("keep pkg/*\n")
    with pytest.raises(PhotoSetError, match="overrides.txt:1"):
        read_overrides(path)


def test_licence_records_free_form_and_kde_metadata(tmp_path):
    root = tmp_path / "pkg"
    doc = root / "usr/share/doc/pkg"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Image Authors:\n\n - sea*\n - Hill.jpg:\n   Copyright © 2011 Ann\n"
        "   Licensed under Creative Commons Attribution 2.0 License.\n\n"
        " - Moon.jpg:\n   Licensed under CC0.\n\nThis package is under the GNU General Public "
        "License.\n")
    meta = root / "usr/share/wallpapers/Lake"
    (meta / "contents/images").mkdir(parents=True)
    (meta / "metadata.json").write_text(json.dumps(
        {"KPlugin": {"License": "LGPLv3", "Authors": [{"Name": "Bo"}]}}))
    lic = PackageLicences(root, "pkg")
    assert lic.lookup("usr/share/backgrounds/sea-l.webp").licence == \
        "Creative Commons Attribution 2.0 License"
    assert lic.lookup("usr/share/backgrounds/Hill.jpg").copyright == "2011 Ann"
    assert lic.lookup("usr/share/backgrounds/Moon.jpg").licence == "CC0"
    other = lic.lookup("usr/share/backgrounds/Other.jpg")
    assert other.matched == "package summary" and "GPL (package)" in other.licence
    kde = lic.lookup("usr/share/wallpapers/Lake/contents/images/1920x1080.jpg")
    assert (kde.licence, kde.copyright, kde.matched) == ("LGPLv3", "Bo", "metadata.json")


def test_cli_without_sources_prints_the_apt_commands(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "set"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("swycc: error: no sources given")
    assert "apt-get download mate-backgrounds plasma-workspace-wallpapers" in err


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_deb_files_are_unpacked_and_cleaned_up(package, tmp_path):
    (package / "DEBIAN").mkdir()
    (package / "DEBIAN/control").write_text(
        "Package: fake-backgrounds\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@x.invalid>\n"
        "Description: test\n")
    deb = tmp_path / "fake-backgrounds_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(package), str(deb)], check=True,
                   capture_output=True)
    out = tmp_path / "set"
    m = build_photo_set([deb], out, PhotoSetConfig(holdout_fraction=0.0), progress=False)
    assert m["packages"]["fake-backgrounds"]["pictures"] == 4
    assert not (out / ".extract").exists()
