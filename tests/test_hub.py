"""Hub ids through huggingface_hub, against a local server speaking the Hub's file protocol.

The server (loopback only, a thread, one request at a time, bounded bodies) answers
HEAD/GET /{org}/{name}/resolve/{revision}/{filename} with the headers hf_hub_download reads:
X-Repo-Commit, ETag / X-Linked-Etag (an LFS file's sha256), X-Linked-Size, Content-Length;
unknown repositories, revisions and files get the Hub's X-Error-Code.
"""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

pytest.importorskip("huggingface_hub")

from swycc.autoencoders.base import Autoencoder  # noqa: E402
from swycc.autoencoders.hub import HubError, is_hub_id  # noqa: E402
from swycc.autoencoders.latent_stats import LatentStats  # noqa: E402

COMMITS = {"main": "a" * 40, "v1": "b" * 40}


class HubHandler(BaseHTTPRequestHandler):
    files: dict = {}  # (repo, commit) -> {filename: (bytes, claimed sha256)}
    requests: list = []

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, body: bool) -> None:
        self.requests.append((self.command, self.path))
        parts = self.path.split("/")
        if len(parts) < 6 or parts[3] != "resolve":
            return self._error(404, "RepoNotFound")
        repo, revision, filename = f"{parts[1]}/{parts[2]}", parts[4], "/".join(parts[5:])
        if not any(r == repo for r, _ in self.files):
            return self._error(404, "RepoNotFound")
        commit = COMMITS.get(revision, revision)
        if (repo, commit) not in self.files:
            return self._error(404, "RevisionNotFound")
        entry = self.files[(repo, commit)].get(filename)
        if entry is None:
            return self._error(404, "EntryNotFound", commit)
        data, sha = entry
        self.send_response(200)
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{sha}"')
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _error(self, status: int, code: str, commit: str | None = None) -> None:
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A local Hub on 127.0.0.1 with HF_HOME in tmp_path; yields the handler class (files)."""
    import huggingface_hub.constants as c

    server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    server.timeout = 5
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    home = tmp_path / "hf"
    for k, v in {"HF_ENDPOINT": endpoint, "HF_HOME": str(home),
                 "HF_HUB_CACHE": str(home / "hub"), "NO_PROXY": "127.0.0.1",
                 "no_proxy": "127.0.0.1"}.items():
        monkeypatch.setenv(k, v)
    # huggingface_hub reads these at import time
    monkeypatch.setattr(c, "ENDPOINT", endpoint)
    monkeypatch.setattr(c, "HUGGINGFACE_CO_URL_TEMPLATE",
                        endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(HubHandler, "files", {})
    monkeypatch.setattr(HubHandler, "requests", [])
    yield HubHandler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _publish(hub, tmp_path, model, repo="org/tiny", revision="main", sha=None):
    folder = tmp_path / f"publish-{revision}"
    model.save_pretrained(folder)
    data = (folder / "model.safetensors").read_bytes()
    digest = sha or hashlib.sha256(data).hexdigest()
    hub.files[(repo, COMMITS[revision])] = {"model.safetensors": (data, digest)}
    return data


def test_hub_id_loads_caches_and_works_offline(hub, tmp_path, random_tiny_model, monkeypatch):
    model = random_tiny_model()
    model.latent_stats = LatentStats((0.1, 0.2), (1.0, 2.0), 4, "test")
    _publish(hub, tmp_path, model)
    other = random_tiny_model(seed=1)
    _publish(hub, tmp_path, other, revision="v1")
    assert is_hub_id("org/tiny") and not is_hub_id(str(tmp_path))
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)  # "runs/typo": a mistyped local path, not a Hub id
    assert is_hub_id("other/typo") and not is_hub_id("runs/typo")
    assert not is_hub_id("org/x.safetensors")
    loaded = Autoencoder.from_pretrained("org/tiny")
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert loaded.latent_stats == model.latent_stats
    tagged = Autoencoder.from_pretrained("org/tiny", revision="v1", torch_dtype=torch.float16)
    assert tagged.network_dtype == torch.float16
    assert torch.equal(tagged.encoder.conv_in.weight, other.encoder.conv_in.weight.half())
    # offline: served from the cache, no request made
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    seen = len(hub.requests)
    again = Autoencoder.from_pretrained("org/tiny")
    assert len(hub.requests) == seen
    assert torch.equal(again.encoder.conv_in.weight, model.encoder.conv_in.weight)
    with pytest.raises(HubError, match="no such local path, and as a Hub id.*not in the local"):
        Autoencoder.from_pretrained("org/never-downloaded")


def test_missing_file_repo_revision_and_wrong_hash_are_clear(hub, tmp_path, random_tiny_model):
    model = random_tiny_model()
    data = _publish(hub, tmp_path, model)
    hub.files[("org/empty", COMMITS["main"])] = {}
    with pytest.raises(HubError, match="has no model.safetensors"):
        Autoencoder.from_pretrained("org/empty")
    with pytest.raises(HubError, match="no such local path, nor a Hub repository"):
        Autoencoder.from_pretrained("org/nothing")
    with pytest.raises(HubError, match="no such revision"):
        Autoencoder.from_pretrained("org/tiny", revision="v9")
    # a file whose bytes do not match the sha256 the Hub lists: refused and not kept
    bad = bytearray(data)
    bad[-1] ^= 0xFF
    hub.files[("org/bad", COMMITS["main"])] = {
        "model.safetensors": (bytes(bad), hashlib.sha256(data).hexdigest())}
    with pytest.raises(HubError, match="does not match the Hub's sha256"):
        Autoencoder.from_pretrained("org/bad")
    blobs = list((tmp_path / "hf" / "hub").glob("models--org--bad/blobs/*"))
    assert blobs == []


def test_local_paths_unchanged_and_revision_refused(tmp_path, random_tiny_model):
    model = random_tiny_model()
    model.save_pretrained(tmp_path / "exp")
    assert Autoencoder.from_pretrained(tmp_path / "exp").latent_stats is None
    with pytest.raises(HubError, match="applies to Hub ids"):
        Autoencoder.from_pretrained(tmp_path / "exp", revision="main")


def test_cli_reads_a_hub_id(hub, tmp_path, random_tiny_model, capsys):
    from swycc.cli import main
    from swycc.data import save_image

    _publish(hub, tmp_path, random_tiny_model(**{"model.method": "gan"}))
    save_image(torch.rand(3, 16, 16) * 2 - 1, tmp_path / "a.png")
    assert main(["reconstruct", str(tmp_path / "a.png"), "--checkpoint", "org/tiny",
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert (tmp_path / "out" / "a.png").is_file()
    assert main(["reconstruct", str(tmp_path / "a.png"), "--checkpoint", "org/missing",
                 "--out", str(tmp_path / "out2"), "--no-progress"]) == 2
    assert "swycc: error: org/missing: no such local path" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_diffusers_adapter_reads_a_hub_id(hub, tmp_path, random_tiny_model):
    pytest.importorskip("diffusers")
    from swycc.integrations.diffusers import AutoencoderSWYCC

    model = random_tiny_model()
    model.latent_stats = LatentStats((0.1, 0.2), (1.0, 2.0), 4, "test")
    _publish(hub, tmp_path, model)
    vae = AutoencoderSWYCC.from_swycc("org/tiny", revision="main", torch_dtype=torch.bfloat16)
    assert vae.dtype == torch.bfloat16 and vae.config.latents_std == [1.0, 2.0]
    assert torch.equal(vae.model.encoder.conv_in.weight, model.encoder.conv_in.weight.bfloat16())
