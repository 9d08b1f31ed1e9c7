"""Where the photo set's pictures come from: Debian packages, unpacked safely, and their images.

``open_sources`` unpacks each .deb with ``dpkg-deb -x`` into a folder of its own (or takes an
already extracted package root as it is); ``image_files`` lists a package's image files with
links folded onto their targets. A package cannot reach outside its folder:

- the ``Package`` field must be a Debian package name (``[a-z0-9][a-z0-9+.-]+``), so a package
  named ``../../x`` is refused before anything is unpacked;
- a .deb that ``dpkg-deb`` refuses (not a .deb, ``../`` members, writes through a link) is a
  ``PhotoSetError`` naming the file and dpkg-deb's own message;
- a link whose target lies outside the package root (``secret.png -> /home/me/private.png``,
  ``x.png -> /etc/passwd``) is skipped and counted, never opened.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from swycc.data.photoset_images import PhotoSetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# Debian packages that hold real photos (see scripts/photo_set_overrides.txt for which files).
DEBIAN_PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers", "gnome-backgrounds",
                   "ukui-wallpapers", "sway-backgrounds", "desktop-base", "lomiri-wallpapers",
                   "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "lxqt-themes",
                   "python3-skimage", "python-matplotlib-data", "digikam-data")
RESERVED_MARKER = "opencv"  # OpenCV's sample/doc images: the reserved test set, never used here
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")  # Debian policy 5.6.1


def apt_hint(packages: tuple[str, ...] = DEBIAN_PACKAGES) -> str:
    return ("get the packages (the download needs no root):\n"
            f"  mkdir -p debs && cd debs && apt-get download {' '.join(packages)}\n"
            "then: python -m swycc.data.photoset --out DIR debs/*.deb")


@dataclass(frozen=True)
class Source:
    package: str
    root: Path  # extracted package root (holds usr/...)


@dataclass
class ImageFile:
    """One image file of a package after following links inside the package."""

    relpath: str  # posix path of the real file, relative to the package root
    file: Path
    aliases: list[str]  # links to it, relative paths


def refuse_reserved(name: str) -> None:
    if RESERVED_MARKER in name.lower():
        raise PhotoSetError(f"{name}: OpenCV's images are the project's reserved test set; "
                            "they must not be used for training, tuning or evaluation")


def package_name(root: Path) -> str:
    """The package of an extracted root: the one usr/share/doc/<name>/copyright, else the dir."""
    docs = sorted(p.parent.name for p in root.glob("usr/share/doc/*/copyright"))
    return docs[0] if len(docs) == 1 else root.name


def _dpkg_deb(path: Path, *args: str) -> str:
    """``dpkg-deb ARGS`` -> stdout; a failure is one PhotoSetError line with dpkg-deb's words."""
    done = subprocess.run(["dpkg-deb", *args], capture_output=True, text=True,
                          errors="replace", stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        said = [line.strip() for line in done.stderr.splitlines()
                if line.strip() and "Exiting with failure status" not in line]
        detail = "; ".join(said)[:400] or f"exit status {done.returncode}"
        raise PhotoSetError(f"{path}: dpkg-deb cannot read it as a package: {detail}")
    return done.stdout


def unpack_deb(path: Path, workdir: Path) -> Source:
    """``dpkg-deb -x`` into ``workdir/<package>`` after checking the package's name."""
    if shutil.which("dpkg-deb") is None:
        raise PhotoSetError(f"{path}: dpkg-deb is needed to unpack .deb files; unpack it "
                            "elsewhere with `dpkg -x FILE DIR` and pass DIR")
    name = _dpkg_deb(path, "-f", str(path), "Package").strip()
    if not PACKAGE_NAME.fullmatch(name):
        raise PhotoSetError(f"{path}: {name!r} is not a Debian package name")
    refuse_reserved(name)
    dest = workdir / name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    _dpkg_deb(path, "-x", str(path), str(dest))
    return Source(name, dest)


def open_sources(paths: list[str | Path], workdir: Path) -> list[Source]:
    """.deb files are unpacked into ``workdir/<package>``; directories are used as they are."""
    sources = []
    for path in map(Path, paths):
        refuse_reserved(path.name)
        if path.is_dir():
            sources.append(Source(package_name(path), path))
        elif path.suffix == ".deb" and path.is_file():
            sources.append(unpack_deb(path, workdir))
        else:
            raise PhotoSetError(f"{path}: not a .deb file or an extracted package directory; "
                                + apt_hint())
    names = [s.package for s in sources]
    if len(set(names)) != len(names):
        raise PhotoSetError(f"a package is given twice: {sorted(names)}")
    return sources


def inside(root: Path, path: Path) -> Path | None:
    """The real path of ``path`` if it (after every link) lies under ``root``, else None (also
    for a link loop)."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a link loop before Python 3.13
        return None
    return real if real.is_relative_to(root.resolve()) else None


def image_files(source: Source) -> tuple[list[ImageFile], int, list[str]]:
    """-> (image files with links folded onto their target, reserved files left out, links
    out of the package skipped). Nothing outside the package root is opened."""
    root = source.root.resolve()
    by_real: dict[Path, ImageFile] = {}
    reserved, outside = 0, []
    for path in sorted(source.root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        rel = path.relative_to(source.root).as_posix()
        if RESERVED_MARKER in rel.lower():
            reserved += 1
            continue
        real = inside(root, path)
        if real is None:
            outside.append(rel)
            continue
        if not real.is_file():
            continue
        real_rel = real.relative_to(root).as_posix()
        found = by_real.setdefault(real, ImageFile(real_rel, real, []))
        if rel != real_rel:
            found.aliases.append(rel)
    return list(by_real.values()), reserved, outside
