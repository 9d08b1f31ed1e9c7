"""Real photos from Debian's desktop-background packages: a training folder and a held-out one.

    python -m swycc.data.photoset --out DIR SOURCE...     (SOURCE: a .deb file or an extracted root)

Steps, each a plain function so tests can check it on tiny generated images:

1. ``open_sources`` (``swycc.data.photoset_sources``): .deb files are unpacked with ``dpkg-deb -x``
   into ``DIR/.extract`` (removed afterwards); a directory is an already extracted package
   (``dpkg -x``). A .deb dpkg-deb refuses or a package name that is not a Debian name is a
   one-line error. Packages or files whose name mentions OpenCV are refused: OpenCV's images are
   the project's reserved test set.
2. ``scan``: every .jpg/.png/.webp (SVG is skipped); links to one file count once, links out of
   the package are skipped and counted, never opened. Each file is decoded once and analysed
   (``analyse``); results are cached in ``DIR/.photoset-cache.json`` keyed by (size, mtime), so
   a rerun or a resumed run decodes only what changed. A file that does not decode, for any
   reason (corrupt, truncated, a decompression bomb), is skipped and counted.
3. ``group_duplicates``: one picture at several resolutions is one group; the largest file is
   kept. Two files are duplicates when their 63-bit DCT hashes (``perceptual_hash``) differ in at
   most ``hash_threshold`` bits, their aspect ratios by at most 12 % (a 16:10 thumbnail of a 16:9
   picture) and their 4x4 colour thumbnails by at most ``colour_tolerance`` levels (so light and
   dark or recoloured variants are kept apart).
4. ``classify``: photo or illustration by ``illustration_reason`` (thresholds measured on these
   packages), then the explicit override list (``photo``/``illustration``/``exclude`` per glob;
   ``scripts/photo_set_overrides.txt`` pins every picture of the five Debian packages by eye).
5. ``choose``: whole pictures, never crops, go to ``DIR/test``. A picture's *family* joins its
   duplicates, its recoloured variants (same hash, other colours), and all files of one KDE
   wallpaper package or of one file name without resolution/orientation/light-dark suffix.
   ``held_out_families`` takes, per package and per kind (photo, illustration), the share
   ``holdout_fraction`` of families with the smallest sha256(salt:family): deterministic,
   independent of file order, and drawn from every package.
6. ``write_outputs``: chosen pictures as RGB PNG (or JPEG q95), shorter side at most
   ``max_short_side`` (Lanczos), into ``DIR/train`` and ``DIR/test``; ``DIR/sources.json`` and
   ``DIR/SOURCES.md`` list every file found: package, path, size, licence, group, family, verdict.
   Files are written atomically and skipped when already written with the same settings; files a
   previous run wrote that are no longer chosen are removed. Train on ``DIR/train`` only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from swycc.io.outputs import write_text_atomic
from swycc.data.photoset_images import (PhotoSetConfig, PhotoSetError, UnionFind, analyse,
                                   are_duplicates, illustration_reason, same_structure,
                                   write_image)
from swycc.data.photoset_licence import PackageLicences, sources_markdown
from swycc.data.photoset_sources import (DEBIAN_PACKAGES, Source, apt_hint, image_files,
                                    open_sources)

VERDICTS = ("photo", "illustration", "exclude")
CACHE_VERSION = 2
__all__ = ["PhotoSetConfig", "PhotoSetError", "build_photo_set", "main"]


@dataclass
class Candidate:
    """One image file (after following links) and what ``analyse`` measured on it."""

    package: str
    relpath: str  # posix path of the real file, relative to the package root
    file: Path
    aliases: list[str] = field(default_factory=list)  # links to it, relative paths
    analysis: dict = field(default_factory=dict)
    licence: dict = field(default_factory=dict)
    group: str = ""
    family: str = ""
    verdict: str = ""
    reason: str = ""
    kept: bool = False  # the largest file of its group
    split: str = ""  # "train" / "test" / "" (not written)
    output: str = ""
    output_size: list[int] = field(default_factory=list)  # [width, height] as written

    @property
    def key(self) -> str:
        return f"{self.package}/{self.relpath}"

    @property
    def pixels(self) -> int:
        return self.analysis["width"] * self.analysis["height"]


# --- sources (swycc.data.photoset_sources: unpacking, links that stay inside the package) ---------

def find_images(source: Source) -> tuple[list[Candidate], int, list[str]]:
    """Image files of a package as candidates -> (candidates, reserved count, links skipped)."""
    files, reserved, outside = image_files(source)
    return ([Candidate(source.package, f.relpath, f.file, f.aliases) for f in files], reserved,
            [f"{source.package}/{rel}" for rel in outside])


# --- analysis ---------------------------------------------------------------------------------

def group_duplicates(cands: list[Candidate], cfg: PhotoSetConfig) -> None:
    """Sets ``group`` (the kept file's key) and ``kept`` (largest pixels, then lossless, then
    path) on every candidate."""
    uf = UnionFind(len(cands))
    for i in range(len(cands)):
        for j in range(i + 1, len(cands)):
            if are_duplicates(cands[i].analysis, cands[j].analysis, cfg):
                uf.union(i, j)
    for members in uf.groups():
        best = min(members, key=lambda i: (-cands[i].pixels,
                                           cands[i].file.suffix.lower() in (".jpg", ".jpeg"),
                                           cands[i].key))
        for i in members:
            cands[i].group, cands[i].kept = cands[best].key, i == best


_VARIANT_SUFFIX = re.compile(r"([_-]?\d{3,5}x\d{3,5}|[_-](portrait|landscape)|[_-](d|l|dark|light"
                             r"|day|night)|[_-]no[_-]logo)$", re.I)


def family_key(package: str, relpath: str) -> str:
    """The picture a file shows, whatever its crop, size or light/dark variant (see module doc)."""
    parts = PurePosixPath(relpath).parts
    if "contents" in parts:  # KDE wallpaper package: <Name>/contents/images*/WxH.ext
        return f"{package}/{'/'.join(parts[: parts.index('contents')])}"
    stem = PurePosixPath(relpath).stem
    while (shorter := _VARIANT_SUFFIX.sub("", stem)) != stem and shorter:
        stem = shorter
    return f"{package}/{PurePosixPath(relpath).parent.as_posix()}/{stem.lower()}"


def assign_families(cands: list[Candidate], cfg: PhotoSetConfig) -> None:
    """family = the smallest family key over the union of duplicate groups, recoloured variants
    (``same_structure``) and files of one family key."""
    uf = UnionFind(len(cands))
    first: dict[str, int] = {}
    for i, c in enumerate(cands):
        for key in (c.group, family_key(c.package, c.relpath)):
            uf.union(i, first.setdefault(key, i))
        for j in range(i):
            if same_structure(c.analysis, cands[j].analysis, cfg):
                uf.union(i, j)
    for members in uf.groups():
        name = min(family_key(cands[i].package, cands[i].relpath) for i in members)
        for i in members:
            cands[i].family = name


def family_rank(family: str, cfg: PhotoSetConfig) -> bytes:
    return hashlib.sha256(f"{cfg.holdout_salt}:{family}".encode()).digest()


def held_out_families(cands: list[Candidate], cfg: PhotoSetConfig) -> set[str]:
    """Families for the test split: within each (package, photo-or-illustration) stratum, the
    floor(fraction * n + 1/2) of its n families with the smallest sha256(salt:family).

    Whole families, never parts; independent of file order and of ``keep_illustrations``; every
    package with enough pictures is represented. Adding families to a package can move at most
    the boundary family of its stratum; sources.json records every split.
    """
    kinds: dict[str, set[str]] = {}
    for c in cands:
        if c.kept and c.verdict != "exclude":
            kinds.setdefault(c.family, set()).add(c.verdict)
    strata: dict[tuple[str, str], list[str]] = {}
    for fam, verdicts in kinds.items():
        kind = "photo" if "photo" in verdicts else "illustration"
        strata.setdefault((fam.split("/", 1)[0], kind), []).append(fam)
    held = set()
    for fams in strata.values():
        ranked = sorted(fams, key=lambda f: family_rank(f, cfg))
        held.update(ranked[: math.floor(cfg.holdout_fraction * len(ranked) + 0.5)])
    return held


def read_overrides(path: str | Path) -> list[tuple[str, str]]:
    """Lines ``VERDICT GLOB`` (VERDICT: photo, illustration or exclude; GLOB on package/path);
    ``#`` starts a comment. Later lines win."""
    rules = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        verdict, _, glob = line.partition(" ")
        if verdict not in VERDICTS or not glob.strip():
            raise PhotoSetError(f"{path}:{n}: expected 'photo|illustration|exclude GLOB', "
                                f"got {line!r}")
        rules.append((verdict, glob.strip()))
    return rules


def classify(cands: list[Candidate], cfg: PhotoSetConfig,
             overrides: list[tuple[str, str]] = ()) -> None:
    """verdict/reason per group from its kept file's statistics, then overrides on any member."""
    by_group: dict[str, list[Candidate]] = {}
    for c in cands:
        by_group.setdefault(c.group, []).append(c)
    for members in by_group.values():
        kept = next(c for c in members if c.kept)
        reason = illustration_reason(kept.analysis["stats"], cfg)
        verdict = "illustration" if reason else "photo"
        names = [f"{c.package}/{p}" for c in members for p in [c.relpath, *c.aliases]]
        for rule_verdict, glob in overrides:
            if any(fnmatchcase(n, glob) for n in names):
                verdict, reason = rule_verdict, f"override: {glob}"
        for c in members:
            c.verdict, c.reason = verdict, reason or "photo statistics"


def choose(cands: list[Candidate], cfg: PhotoSetConfig) -> None:
    """Sets ``split`` and ``output`` name on the kept files that go into the set."""
    held, used = held_out_families(cands, cfg), set()
    for c in sorted(cands, key=lambda c: c.key):
        wanted = c.verdict == "photo" or (c.verdict == "illustration" and cfg.keep_illustrations)
        if c.kept and wanted:
            c.split = "test" if c.family in held else "train"
            stem = output_stem(c)
            if stem.lower() in used:  # two paths that slug alike: tell them apart by content
                stem = f"{stem}-{c.analysis['sha256'][:8]}"
            used.add(stem.lower())
            c.output = f"{c.split}/{stem}.{cfg.image_format}"


def output_stem(c: Candidate) -> str:
    parts = [p for p in PurePosixPath(c.relpath).with_suffix("").parts
             if p not in ("usr", "share", "backgrounds", "wallpapers", "contents", "images")]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join([c.package, *parts]))


# --- writing ----------------------------------------------------------------------------------

def _settings_tag(cfg: PhotoSetConfig) -> str:
    """What an output file depends on besides its source bytes."""
    return f"{cfg.image_format}:{cfg.max_short_side}"


class Cache:
    """``DIR/.photoset-cache.json``: analyses keyed by file signature, outputs by source hash."""

    def __init__(self, path: Path, cfg: PhotoSetConfig):
        self.path = path
        self.tag = json.dumps([CACHE_VERSION, cfg.analysis_side])
        data = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError:
                data = {}
        same = data.get("tag") == self.tag
        self.analyses: dict = data.get("analyses", {}) if same else {}
        self.outputs: dict = data.get("outputs", {})

    @staticmethod
    def signature(file: Path) -> list[int]:
        st = file.stat()
        return [st.st_size, st.st_mtime_ns]

    def analysis(self, key: str, file: Path) -> dict | None:
        entry = self.analyses.get(key)
        return entry["analysis"] if entry and entry["sig"] == self.signature(file) else None

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps(
            {"tag": self.tag, "analyses": self.analyses, "outputs": self.outputs}))


def scan(sources: list[Source], cfg: PhotoSetConfig, cache: Cache, progress: bool = True
         ) -> tuple[list[Candidate], list[dict], int, list[str]]:
    """-> (analysed candidates, skipped bad files [{file, error}], reserved files left out,
    links out of their package skipped). A file that fails to decode for any reason (corrupt,
    truncated, a decompression bomb past PIL's pixel limit) is skipped and counted."""
    from tqdm import tqdm

    cands, reserved, outside = [], 0, []
    for s in sources:
        found, n, links = find_images(s)
        cands += found
        reserved += n
        outside += links
    ok, skipped = [], []
    for i, c in enumerate(tqdm(cands, desc="analyse", unit="img", disable=not progress)):
        c.analysis = cache.analysis(c.key, c.file) or {}
        if not c.analysis:
            try:
                c.analysis = analyse(c.file, cfg)
            except Exception as e:  # noqa: BLE001 - one bad file never ends the build
                skipped.append({"file": c.key, "error": f"{type(e).__name__}: {e}"})
                continue
            cache.analyses[c.key] = {"sig": cache.signature(c.file), "analysis": c.analysis}
            if i % 20 == 0:
                cache.save()  # resumable: an interrupted scan keeps what it measured
        ok.append(c)
    cache.save()
    return ok, skipped, reserved, outside


def write_outputs(cands: list[Candidate], out: Path, cfg: PhotoSetConfig, cache: Cache,
                  progress: bool = True) -> int:
    """Writes chosen files (skipping ones already written alike); removes stale ones a previous
    run wrote. -> number of files written now."""
    from tqdm import tqdm

    chosen = {c.output: c for c in cands if c.output}
    for name in list(cache.outputs):
        if name not in chosen:
            (out / name).unlink(missing_ok=True)
            del cache.outputs[name]
    written = 0
    for name, c in tqdm(sorted(chosen.items()), desc="write", unit="img", disable=not progress):
        record = {"sha256": c.analysis["sha256"], "settings": _settings_tag(cfg)}
        prev = cache.outputs.get(name, {})
        if (out / name).is_file() and {k: prev.get(k) for k in record} == record:
            c.output_size = prev["size"]
            continue
        record["size"] = list(write_image(c.file, out / name, cfg))
        c.output_size = record["size"]
        cache.outputs[name] = record
        cache.save()
        written += 1
    return written


def manifest(cands: list[Candidate], sources: list[Source], skipped: list[dict], reserved: int,
             outside: list[str], cfg: PhotoSetConfig) -> dict:
    files = []
    for c in sorted(cands, key=lambda c: c.key):
        a = c.analysis
        files.append({
            "package": c.package, "path": c.relpath, "aliases": c.aliases,
            "width": a["width"], "height": a["height"], "sha256": a["sha256"],
            "licence": c.licence, "group": c.group, "kept": c.kept, "family": c.family,
            "verdict": c.verdict, "reason": c.reason, "stats": a["stats"],
            "split": c.split or None, "output": c.output or None,
            "output_size": c.output_size or None})
    per_package = {}
    for s in sources:
        mine = [c for c in cands if c.package == s.package]
        per_package[s.package] = {
            "files": len(mine) + sum(len(c.aliases) for c in mine), "distinct_files": len(mine),
            "pictures": sum(c.kept for c in mine),
            "photos": sum(c.kept and c.verdict == "photo" for c in mine),
            "illustrations": sum(c.kept and c.verdict == "illustration" for c in mine),
            "train": sum(c.split == "train" for c in mine),
            "test": sum(c.split == "test" for c in mine)}
    return {"config": asdict(cfg), "packages": per_package, "skipped": skipped,
            "reserved_left_out": reserved, "links_out_of_package_skipped": outside,
            "files": files}


def build_photo_set(paths: list[str | Path], out: str | Path,
                    cfg: PhotoSetConfig = PhotoSetConfig(),
                    overrides: list[tuple[str, str]] = (), progress: bool = True) -> dict:
    """The whole pipeline (module docstring); returns the manifest written to sources.json."""
    if not paths:
        raise PhotoSetError("no sources given; " + apt_hint())
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / ".extract"
    try:
        try:
            sources = open_sources(paths, workdir)
        except PhotoSetError:
            if created:  # bad input leaves nothing behind
                shutil.rmtree(out, ignore_errors=True)
            raise
        cache = Cache(out / ".photoset-cache.json", cfg)
        cands, skipped, reserved, outside = scan(sources, cfg, cache, progress)
        licences = {s.package: PackageLicences(s.root, s.package) for s in sources}
        for c in cands:
            c.licence = asdict(licences[c.package].lookup(c.relpath))
        group_duplicates(cands, cfg)
        assign_families(cands, cfg)
        classify(cands, cfg, overrides)
        choose(cands, cfg)
        write_outputs(cands, out, cfg, cache, progress)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    m = manifest(cands, sources, skipped, reserved, outside, cfg)
    write_text_atomic(out / "sources.json", json.dumps(m, indent=1, ensure_ascii=False))
    write_text_atomic(out / "SOURCES.md", sources_markdown(m))
    return m


def add_arguments(p) -> None:
    """The builder's options on an argparse parser (``python -m swycc.data.photoset``, a CLI
    verb)."""
    p.add_argument("sources", nargs="*", help=".deb files or extracted package roots")
    p.add_argument("--out", required=True, help="output folder (train/, test/, sources.json)")
    p.add_argument("--keep-illustrations", action="store_true")
    p.add_argument("--holdout-fraction", type=float, default=PhotoSetConfig.holdout_fraction)
    p.add_argument("--max-short-side", type=int, default=PhotoSetConfig.max_short_side,
                   help="shorter side of written images at most this (0: keep)")
    p.add_argument("--format", choices=("png", "jpg"), default="png")
    p.add_argument("--overrides", help="file of 'photo|illustration|exclude GLOB' lines")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    """Builds the set from parsed ``add_arguments`` options, prints a summary -> exit status."""
    cfg = PhotoSetConfig(max_short_side=args.max_short_side, image_format=args.format,
                         keep_illustrations=args.keep_illustrations,
                         holdout_fraction=args.holdout_fraction)
    overrides = read_overrides(args.overrides) if args.overrides else []
    m = build_photo_set(args.sources, args.out, cfg, overrides, progress=not args.quiet)
    for name, s in m["packages"].items():
        print(f"{name}: {s['files']} files, {s['pictures']} pictures ({s['photos']} photos, "
              f"{s['illustrations']} illustrations); written: train {s['train']}, test {s['test']}")
    print(f"skipped {len(m['skipped'])} unreadable files and "
          f"{len(m['links_out_of_package_skipped'])} links out of their package; "
          f"wrote {Path(args.out) / 'sources.json'}")
    if missing := tuple(p for p in DEBIAN_PACKAGES if p not in m["packages"]):
        print(f"not among the sources: {', '.join(missing)}; " + apt_hint(missing))
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m swycc.data.photoset", description=__doc__.split("\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError) as e:
        print(f"swycc: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
