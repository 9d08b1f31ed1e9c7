"""Which licence applies to one file of a Debian package: read from the package's own records.

Three sources, most specific first:

1. KDE wallpaper packages (``<Name>/metadata.json`` or ``metadata.desktop`` beside
   ``<Name>/contents/``): the upstream ``License`` and ``Authors`` of that one wallpaper.
2. ``/usr/share/doc/<package>/copyright`` in Debian's machine-readable format (DEP-5): the last
   ``Files:`` paragraph whose pattern matches the file (DEP-5's rule). Patterns there are paths in
   the *source* tree (``nature/Aqua.jpg``), so a pattern matches an installed path when it
   matches the whole path or a tail of it (``usr/share/backgrounds/mate/nature/Aqua.jpg``).
   ``debian/*`` paragraphs are ignored.
3. Free-form copyright files (gnome-backgrounds): bullet lists ``- Name.jpg:`` followed by
   ``Copyright ...`` and ``Licensed under ...`` lines, matched on the file name.

A file none of these names gets the package summary: every licence the copyright file names,
marked ``matched: package summary`` so nobody mistakes it for a per-file record.
"""

from __future__ import annotations

import configparser
import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from swycc.data.photoset_sources import inside


@dataclass(frozen=True)
class LicenceInfo:
    licence: str  # short name as the record writes it ("GPL-2+", "CC-BY-SA-4.0", ...)
    copyright: str  # holders, one line ("" when the record names none)
    matched: str  # which record: "metadata.json", "copyright Files: <pattern>", ...


def _dep5_paragraphs(text: str) -> list[dict[str, str]]:
    """DEP-5 paragraphs as {field: value}; continuation lines joined with newlines."""
    paragraphs, fields, key = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if fields:
                paragraphs.append(fields)
            fields, key = {}, None
        elif line[0] in " \t" and key is not None:
            fields[key] += "\n" + line.strip()
        elif m := re.match(r"([A-Za-z-]+):\s*(.*)$", line):
            key = m[1].lower()
            fields[key] = m[2].strip()
    return paragraphs


def _tail_match(relpath: str, pattern: str) -> bool:
    """DEP-5 pattern (source-tree path) against an installed path: whole path or a tail."""
    return fnmatchcase(relpath, pattern) or fnmatchcase(relpath, "*/" + pattern)


class PackageLicences:
    """Licence records of one extracted package rooted at ``root``; see the module docstring."""

    def __init__(self, root: str | Path, package: str):
        self.root, self.package = Path(root), package
        path = self.root / "usr/share/doc" / package / "copyright"
        self.text = path.read_text(errors="replace") if self._readable(path) else ""
        paragraphs = _dep5_paragraphs(self.text)
        self.machine_readable = bool(paragraphs) and "format" in paragraphs[0]
        # (patterns, licence, copyright) in file order; DEP-5: the last match wins.
        self.file_rules: list[tuple[list[str], str, str]] = []
        if self.machine_readable:
            for p in paragraphs:
                if "files" in p and "license" in p:
                    patterns = [s for s in p["files"].split() if not s.startswith("debian/")]
                    if patterns:
                        self.file_rules.append((patterns, p["license"].split("\n")[0],
                                                " ".join(p.get("copyright", "").split())))
            names = [p["license"].split("\n")[0] for p in paragraphs if "license" in p]
        else:
            self.file_rules = self._free_form_rules(self.text)
            names = [lic for _, lic, _ in self.file_rules]
            if "GNU General Public License" in self.text:
                names.append("GPL (package)")
        self.summary = ", ".join(dict.fromkeys(n for n in names if n)) or "no copyright file"

    def _readable(self, path: Path) -> bool:
        """A regular file inside the package: records behind a link out of it are never read."""
        real = inside(self.root, path)
        return real is not None and real.is_file()

    @staticmethod
    def _free_form_rules(text: str) -> list[tuple[list[str], str, str]]:
        """``- Name.jpg:`` bullets, then ``Copyright`` / ``Licensed under`` lines for them."""
        rules, globs, holders, closed = [], [], [], False
        for line in text.splitlines():
            s = line.strip()
            if m := re.fullmatch(r"-\s+(\S+?):?", s):
                if closed:  # a new bullet after a licence line starts a new group
                    globs, holders, closed = [], [], False
                globs.append(m[1])
            elif globs and s.lower().startswith("copyright"):
                holders.append(re.sub(r"^copyright\s*(©|\(c\))?\s*", "", s, flags=re.I))
            elif globs and (m := re.match(r"licen[cs]ed under (?:the )?(?:a )?(.+?)\.?$", s, re.I)):
                rules.append((list(globs), m[1], "; ".join(holders)))
                closed = True
        return rules

    def kde_metadata(self, relpath: str) -> LicenceInfo | None:
        """``<Name>/metadata.json|.desktop`` for a file under ``<Name>/contents/``."""
        parts = PurePosixPath(relpath).parts
        if "contents" not in parts:
            return None
        base = self.root.joinpath(*parts[: parts.index("contents")])
        meta = base / "metadata.json"
        if self._readable(meta):
            try:
                plugin = json.loads(meta.read_text()).get("KPlugin", {})
            except (ValueError, OSError):
                return None
            authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
            lic = plugin.get("License")
            return LicenceInfo(lic, authors, "metadata.json") if lic else None
        meta = base / "metadata.desktop"
        if self._readable(meta):
            parser = configparser.ConfigParser(interpolation=None, strict=False)
            try:
                parser.read_string(meta.read_text(errors="replace"))
                entry = parser["Desktop Entry"]
            except (configparser.Error, KeyError):
                return None
            lic = entry.get("X-KDE-PluginInfo-License")
            return LicenceInfo(lic, entry.get("X-KDE-PluginInfo-Author", ""),
                               "metadata.desktop") if lic else None
        return None

    def lookup(self, relpath: str) -> LicenceInfo:
        """The licence of the file at ``relpath`` (posix, relative to the package root)."""
        if info := self.kde_metadata(relpath):
            return info
        name = PurePosixPath(relpath).name
        found = None
        for patterns, lic, holders in self.file_rules:
            for pattern in patterns:
                hit = (_tail_match(relpath, pattern) if self.machine_readable
                       else fnmatchcase(name, pattern.rstrip(":")))
                if hit:
                    found = LicenceInfo(lic, holders, f"copyright Files: {pattern}")
                    break
            if found and not self.machine_readable:
                break  # free-form lists: the first bullet naming the file
        return found or LicenceInfo(self.summary, "", "package summary")


def sources_markdown(m: dict) -> str:
    lines = ["# Photo set: sources and licences", "",
             "Built by `python -m swycc.data.photoset` from Debian desktop-background packages. "
             "Each written picture keeps its upstream licence (below); train on `train/`, "
             "evaluate on `test/` (whole pictures never seen in training).", "",
             "| package | files | distinct | pictures | photos | illustrations | train | test |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, p in m["packages"].items():
        lines.append(f"| {name} | {p['files']} | {p['distinct_files']} | {p['pictures']} | "
                     f"{p['photos']} | {p['illustrations']} | {p['train']} | {p['test']} |")
    lines += ["", f"Unreadable files skipped: {len(m['skipped'])}. OpenCV files left out: "
              f"{m['reserved_left_out']}.", "", "## Written pictures", "",
              "| output | source | size (source -> written) | licence | copyright | verdict |",
              "| --- | --- | --- | --- | --- | --- |"]
    for f in m["files"]:
        if f["output"]:
            lic = f["licence"]
            lines.append(f"| {f['output']} | {f['package']}: /{f['path']} | "
                         f"{f['width']}x{f['height']} -> {'x'.join(map(str, f['output_size']))} | "
                         f"{lic['licence']} ({lic['matched']}) | "
                         f"{lic['copyright']} | {f['verdict']} ({f['reason']}) |")
    return "\n".join(lines) + "\n"
