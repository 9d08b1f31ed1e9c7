"""Exports named by a Hugging Face Hub id ("org/name") as well as by a local path.

    Autoencoder.from_pretrained("org/name", revision="v1")   # downloaded once, then cached
    Autoencoder.from_pretrained("runs/a/export")              # a local path, as always

A name that exists on disk (or whose first part ``org`` is a local directory) is a local path;
otherwise a name of the form ``org/name`` (Hub repository id rules) is fetched with
``huggingface_hub.hf_hub_download``: its cache (``HF_HOME``
/ ``HF_HUB_CACHE``), ``revision`` (branch, tag or commit), ``HF_ENDPOINT`` and offline mode
(``HF_HUB_OFFLINE=1``: only what is cached) all apply as for any Hub model. The file is checked
against the sha256 the Hub lists for it (an LFS file's ETag) before it is read: a corrupted or
tampered download is removed from the cache and refused.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

WEIGHTS_NAME = "model.safetensors"
README_NAME = "README.md"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class HubError(ValueError):
    """A Hub id that cannot be resolved: unknown repository, revision or file, offline without
    a cached copy, or a download whose hash does not match."""


# the models shipped inside the package (swycc.autoencoders.pretrained), resolvable by name
PRETRAINED_DIR = Path(__file__).parents[1] / "pretrained"
SHIPPED_NAMES = ("small-swycc-f8c4", "small-swycc-f8c2")


def shipped_export(name: str) -> Path | None:
    """The directory of the shipped model called ``name``, or None if there is none."""
    if name not in SHIPPED_NAMES:
        return None
    path = PRETRAINED_DIR / name
    return path if (path / "model.safetensors").exists() else None


def is_hub_id(name: str | os.PathLike) -> bool:
    """True for ``org/name`` that is not a local path: neither it nor its first part ``org``
    exists here (so a mistyped ``runs/exprot`` is reported as a missing local path at once),
    and it does not name a .safetensors file."""
    text = os.fspath(name)
    return (bool(_REPO_ID.match(text)) and ".." not in text and not text.endswith(".safetensors")
            and not Path(text).exists() and not Path(text).parent.exists())


def resolve_export(name: str | os.PathLike, revision: str | None = None,
                   cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
                   filename: str = WEIGHTS_NAME) -> Path:
    """A local path as given; a shipped model's name (``small-swycc-f8c2``) -> its directory
    in the package, unless a local path of that name exists; a Hub id -> the cached path of its
    ``filename``."""

    shipped = None if Path(name).exists() else shipped_export(os.fspath(name))
    if shipped is not None:
        name = shipped
    if not is_hub_id(name):
        if revision is not None:
            raise HubError(f"{name}: revision={revision!r} applies to Hub ids (org/name), not "
                           f"to a local path")
        return Path(name)
    return hub_file(os.fspath(name), filename, revision, cache_dir, token)


def hub_file(repo_id: str, filename: str, revision: str | None = None,
             cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
             verify: bool = True) -> Path:
    """``hf_hub_download`` with one-line errors and the sha256 check of the module docstring."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise HubError(f"{repo_id}: no such local path; Hub ids need huggingface_hub "
                       f"(pip install 'swycc[hub]')") from None
    from huggingface_hub.errors import (LocalEntryNotFoundError, RemoteEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    where = f"{repo_id}" + (f"@{revision}" if revision else "")
    try:
        path = Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                    token=token))
    except RevisionNotFoundError:
        raise HubError(f"{where}: no such revision on the Hub") from None
    except RemoteEntryNotFoundError:
        raise HubError(f"{where}: the repository has no {filename} (is it a swycc export?)") \
            from None
    except RepositoryNotFoundError:
        raise HubError(f"{repo_id}: no such local path, nor a Hub repository (a private one "
                       f"needs `hf auth login` or token=)") from None
    except LocalEntryNotFoundError:
        raise HubError(f"{where}: no such local path, and as a Hub id: {filename} is not in "
                       f"the local Hub cache and the Hub cannot be reached (offline mode "
                       f"HF_HUB_OFFLINE=1, or no connection)") from None
    except OSError as e:  # connection and HTTP errors huggingface_hub does not classify
        raise HubError(f"{where}: cannot download {filename} ({type(e).__name__}: {e})") \
            from None
    if verify:
        _check_sha256(path, where, filename)
    return path


def _check_sha256(path: Path, where: str, filename: str) -> None:
    """Cached files live in ``blobs/<etag>``; an LFS file's ETag is the sha256 of its bytes."""
    blob = path.resolve()
    if not _SHA256.match(blob.name):
        return  # a small git file: its ETag is a git object id, not a content hash
    digest = hashlib.sha256()
    with open(blob, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != blob.name:
        blob.unlink(missing_ok=True)
        if path.is_symlink():
            path.unlink(missing_ok=True)
        raise HubError(f"{where}: {filename} does not match the Hub's sha256 (expected "
                       f"{blob.name[:12]}..., got {digest.hexdigest()[:12]}...); the damaged "
                       f"copy was removed from the cache, try again")
