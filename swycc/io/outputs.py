"""The files one command writes: planned before the first write, all or nothing.

One policy for every verb that writes files named after its inputs (``reconstruct``,
``decode``, ``encode``):

- Output names are sanitised: an input's name (a file stem, or a name stored in a latents
  file) keeps only its last path component, without control characters or leading dots, so
  every output stays inside ``--out``; ``../../x`` becomes ``x``.
- Two inputs that would get the same output name (``a.gif`` and ``a.webp``, two latents
  entries named alike, ``A`` and ``a`` on a case-insensitive disk) do not overwrite each other:
  the later one gets ``-2``, ``-3``, ... and the command says so.
- An output directory may exist; an existing output file is refused (naming it) unless
  ``--overwrite``; a path where a directory is expected is refused. All of it is checked before
  anything is computed or written.
- Files are written under hidden ``.NAME.part`` names and renamed into place only when every
  output is done; on any failure (including Ctrl-C) the parts, and directories this command
  created, are removed, and files that existed before are left as they were.

Run and report directories (``train``, ``eval``, ``demo``) own fixed file names inside their
``--out`` and replace or resume them; they are not planned here.
"""

from __future__ import annotations

import errno
import os
import re
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a report-style file (JSON, markdown) all or nothing: under a hidden ``.NAME.tmp``
    beside it, then renamed into place; missing parent directories are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class OutputError(ValueError):
    """An output path that cannot be used (exists, is a file where a directory is needed, ...)."""


# control characters, path separators, and characters a shell would act on unquoted
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|$`;&'(){}\[\]!#~]")
MAX_STEM_BYTES = 200


def safe_stem(name: str, fallback: str = "image") -> str:
    """A file stem made from ``name`` that cannot leave its directory: the last path component
    (``/`` and ``\\`` both count), without control or shell-hostile characters (each becomes
    ``_``), leading dots, dashes (``-rf`` would read as an option) or spaces, at most 200 bytes;
    ``fallback`` when nothing is left."""
    name = unicodedata.normalize("NFC", str(name))
    last = re.split(r"[/\\]", name)[-1]
    stem = _UNSAFE.sub("_", last).strip().lstrip(".- ").strip()
    while len(stem.encode()) > MAX_STEM_BYTES:
        stem = stem[:-1]
    return stem or fallback


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_dir_usable(directory: str | os.PathLike) -> None:
    """``directory`` is a directory this user can write to, or can be made one."""
    directory = Path(directory)
    base = _existing_ancestor(directory)
    if not base.is_dir():
        where = "" if base == directory.absolute() else f"{directory}: "
        raise OutputError(f"{where}{base} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{directory}: {base} is not writable")


def check_out_outside(out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None]) -> None:
    """``out`` is neither one of the folders a command reads nor inside one ({option: folder};
    None: not given): a run would read its own outputs back (sample grids as training data,
    latents as a class folder) on a re-run. Links are resolved."""
    where = Path(out).resolve()
    for option, folder in inputs.items():
        if folder is None:
            continue
        base = Path(folder).resolve()
        if where == base or base in where.parents:
            raise OutputError(f"--out {out} is inside {option} {folder}: the command would "
                              f"read its own outputs back; put --out outside the input")


class OutputPlan:
    """Every file a command will write, decided up front; ``commit()`` writes them.

        plan = OutputPlan(overwrite=args.overwrite)
        paths = plan.add_images(out_dir, "photo", samples=2)   # [photo_s1.png, photo_s2.png]
        plan.check()                                           # refuses existing files
        with plan.writing() as stage:                          # all or nothing
            save_image(x, stage(paths[0]))
    """

    def __init__(self, overwrite: bool = False):
        self.overwrite = overwrite
        self.paths: list[Path] = []
        self._planned: set[Path] = set()
        self._taken: set[tuple[str, str]] = set()  # (directory, casefolded name)
        self.renamed: list[tuple[str, str]] = []  # (input name, output stem) where they differ

    def _free(self, directory: Path, names: list[str]) -> bool:
        key = str(directory.absolute())
        return not any((key, n.casefold()) in self._taken for n in names)

    def _take(self, directory: Path, names: list[str]) -> list[Path]:
        key = str(directory.absolute())
        for n in names:
            self._taken.add((key, n.casefold()))
        out = [directory / n for n in names]
        self.paths += out
        self._planned.update(out)
        return out

    def add_images(self, directory: str | os.PathLike, name: str, samples: int = 1,
                   suffix: str = ".png") -> list[Path]:
        """Output paths for one input: ``stem.png``, or ``stem_s1.png`` ... when samples > 1;
        the stem is ``safe_stem(name)``, made unique among this plan's names."""
        directory = Path(directory)
        stem = safe_stem(name)

        def names(s: str) -> list[str]:
            return [f"{s}{suffix}"] if samples == 1 else [f"{s}_s{k + 1}{suffix}"
                                                          for k in range(samples)]
        chosen, n = stem, 1
        while not self._free(directory, names(chosen)):
            n += 1
            chosen = f"{stem}-{n}"
        if chosen != name:
            self.renamed.append((name, chosen))
        return self._take(directory, names(chosen))

    def add_file(self, path: str | os.PathLike) -> Path:
        """One output file at exactly ``path`` (e.g. ``encode --out z.safetensors``)."""
        path = Path(path)
        if path.name in ("", ".", ".."):
            raise OutputError(f"--out {path}: needs a file name")
        if not self._free(path.parent, [path.name]):
            raise OutputError(f"{path}: named twice as an output")
        return self._take(path.parent, [path.name])[0]

    def check(self) -> None:
        """Refuse, before anything is written, outputs that cannot be written or would replace
        an existing file (unless ``overwrite``)."""
        for directory in sorted({p.parent for p in self.paths}):
            check_dir_usable(directory)
        for p in self.paths:
            if p.is_dir():
                raise OutputError(f"{p}: is a directory; give a file name")
            if p.exists() or p.is_symlink():
                if not self.overwrite:
                    raise OutputError(f"{p}: exists; pass --overwrite to replace it, or use "
                                      f"another --out")
                if not os.access(p.parent, os.W_OK):
                    raise OutputError(f"{p}: cannot be replaced ({p.parent} is not writable)")

    @contextmanager
    def writing(self) -> Iterator[Callable[[Path], Path]]:
        """``stage(path)`` gives the hidden path to write ``path``'s content to. When the block
        ends normally every staged file is renamed into place; otherwise all are removed."""
        staged: dict[Path, Path] = {}
        made_dirs: list[Path] = []

        def stage(path: Path) -> Path:
            path = Path(path)
            if path not in self._planned:
                raise RuntimeError(f"{path} is not in the output plan")
            missing = []
            d = path.parent.absolute()
            while not d.exists():
                missing.append(d)
                d = d.parent
            for d in reversed(missing):
                d.mkdir()
                made_dirs.append(d)
            part = path.with_name(f".{path.name}.{os.getpid()}.part")
            staged[path] = part
            return part

        try:
            yield stage
            for path, part in staged.items():
                if not part.exists():
                    raise RuntimeError(f"{path}: staged but not written")
            placed: list[Path] = []
            try:
                for path, part in staged.items():
                    if self.overwrite:
                        os.replace(part, path)
                    else:  # another run may have written it since check(): never clobber
                        _place_new(part, path)
                        placed.append(path)
            except BaseException:
                for path in placed:
                    path.unlink(missing_ok=True)
                raise
        except BaseException:
            for part in staged.values():
                part.unlink(missing_ok=True)
                for leftover in part.parent.glob(f".{part.name}*.tmp"):
                    leftover.unlink(missing_ok=True)
            for d in reversed(made_dirs):
                try:
                    d.rmdir()
                except OSError:  # not empty: something else put files there meanwhile
                    pass
            raise

    def describe_renames(self) -> list[str]:
        return [f"note: {a!r} is written as {b!r} (name sanitised or already taken)"
                for a, b in self.renamed]


def _place_new(part: Path, path: Path) -> None:
    """Rename ``part`` to ``path`` only if ``path`` does not exist, atomically (a hard link
    fails when the name is taken), so that two runs into one --out cannot overwrite each other;
    OutputError when it exists."""
    try:
        os.link(part, path)
    except FileExistsError:
        raise OutputError(f"{path}: exists (another run wrote it while this one worked); "
                          f"nothing of this run was kept; pass --overwrite to replace it, or "
                          f"use another --out") from None
    except OSError as e:  # a file system without hard links: check, then rename
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists() or path.is_symlink():
            raise OutputError(f"{path}: exists (another run wrote it while this one worked); "
                              f"pass --overwrite to replace it, or use another --out") from None
        os.replace(part, path)
        return
    part.unlink()


__all__ = ["OutputError", "OutputPlan", "check_dir_usable", "check_out_outside", "safe_stem"]
