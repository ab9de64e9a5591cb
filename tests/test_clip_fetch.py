"""Fetching CLIP over real HTTP from a loopback server holding the tiny model, and failing well."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import models.clip.fetch as clip_fetch
from models.clip import ClipModels
from models.clip.install import IMAGE_FILE, TEXT_FILE, VOCAB_FILE
from models.fetch import FetchError, fetch_clip
from models.manifest import MANIFEST_NAME, Manifest, sha256_file
from tests.clip_fixtures import IMAGE_ONNX, TEXT_ONNX, VOCAB, cosine, reference
from workers.cli import main

FAKE_EXPORT = """
import argparse, shutil, sys
parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("out")
parser.add_argument("--arch")
args = parser.parse_args()
assert args.arch == "ViT-B-16", args.arch
for src, name in (("image.onnx", "vit-b-16.img.fp32.onnx"), ("text.onnx", "vit-b-16.txt.fp32.onnx"),
                  ("vocab.txt", "vocab.txt")):
    shutil.copy(FIXTURES + "/" + src, args.out + "/" + name)
"""


class Release:
    """A directory served on 127.0.0.1 the way the GitHub release serves its assets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        release = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                release.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1.1.0"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def release(tmp_path: Path) -> Iterator[Release]:
    root = tmp_path / "www"
    (root / "v1.1.0").mkdir(parents=True)
    for src, name in ((IMAGE_ONNX, IMAGE_FILE), (TEXT_ONNX, TEXT_FILE), (VOCAB, VOCAB_FILE)):
        shutil.copy(src, root / "v1.1.0" / name)
    server = Release(root)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_cn_clip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever is installed here, the fetch must not find cn_clip unless a test provides it."""
    monkeypatch.setattr(clip_fetch, "packaged_vocab", lambda: None)
    monkeypatch.delenv("CLIP_MODEL_URL", raising=False)


def free_port() -> int:
    """A loopback port nothing listens on: connecting is refused, as offline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fetch_over_http_installs_a_working_pair(release: Release, tmp_path: Path):
    messages: list[str] = []
    target = fetch_clip(tmp_path / "models", messages.append, base_url=release.url)
    assert target == tmp_path / "models" / "clip"
    manifest = Manifest.load(target / MANIFEST_NAME)
    assert manifest.models["image"].source == f"{release.url}/{IMAGE_FILE}"
    assert manifest.models["vocab"].source == f"{release.url}/{VOCAB_FILE}"
    assert manifest.models["text"].sha256 == sha256_file(TEXT_ONNX)
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [IMAGE_FILE, TEXT_FILE, VOCAB_FILE, MANIFEST_NAME]
    )  # no temporary leftovers
    size = IMAGE_ONNX.stat().st_size / 1e6
    assert f"{IMAGE_FILE}: {size:.1f} of {size:.1f} MB (100%)" in messages
    assert any("no published sha256" in m for m in messages)
    clip = ClipModels.load(tmp_path / "models")
    text = str(reference()["texts"][1])
    assert cosine(clip.text()(text), reference()["text_features"][1]) >= 0.99999

    release.requests.clear()
    fetch_clip(tmp_path / "models", messages.append, base_url=release.url)
    assert release.requests == [] and "present and verified" in messages[-1]


def test_damaged_install_is_fetched_again(release: Release, tmp_path: Path):
    target = fetch_clip(tmp_path, lambda _: None, base_url=release.url)
    (target / IMAGE_FILE).write_bytes(b"half a model")
    fetch_clip(tmp_path, lambda _: None, base_url=release.url)
    assert sha256_file(target / IMAGE_FILE) == sha256_file(IMAGE_ONNX)


def test_env_url_and_the_manual_file_route(
    release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`CLIP_MODEL_URL=file:///dir mtai models fetch clip`, as README tells users."""
    monkeypatch.setenv("CLIP_MODEL_URL", (release.root / "v1.1.0").as_uri())
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    assert main(["models", "fetch", "clip"]) == 0
    target = tmp_path / "models" / "clip"
    assert Manifest.load(target / MANIFEST_NAME).models["text"].source.startswith("file://")
    assert release.requests == []


def test_vocab_falls_back_to_chinese_clip(
    release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (release.root / "v1.1.0" / VOCAB_FILE).rename(release.root / VOCAB_FILE)
    fallback = release.url.rsplit("/", 1)[0] + "/" + VOCAB_FILE
    monkeypatch.setattr(clip_fetch, "VOCAB_URL", fallback)
    target = fetch_clip(tmp_path, lambda _: None, base_url=release.url)
    assert Manifest.load(target / MANIFEST_NAME).models["vocab"].source == fallback


def test_offline_says_how_to_install_by_hand(tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}/v1.1.0"
    with pytest.raises(FetchError) as caught:
        fetch_clip(tmp_path, lambda _: None, base_url=url)
    message = str(caught.value)
    assert f"cannot reach {url}/{IMAGE_FILE}" in message
    assert "CLIP_MODEL_URL=file:///" in message and "README" in message
    assert not (tmp_path / "clip" / MANIFEST_NAME).exists()
    assert list((tmp_path / "clip").iterdir()) == []  # no partial files


def test_a_local_mirror_without_the_file_says_so_not_offline(tmp_path: Path):
    empty = tmp_path / "mirror"
    empty.mkdir()
    with pytest.raises(FetchError) as caught:
        fetch_clip(tmp_path / "models", lambda _: None, base_url=empty.as_uri())
    message = str(caught.value)
    assert f"{empty.as_uri()}/{IMAGE_FILE}" in message and "does not hold that file" in message
    assert "Without network access" not in message


def test_missing_asset_is_an_http_error(release: Release, tmp_path: Path):
    (release.root / "v1.1.0" / TEXT_FILE).unlink()
    with pytest.raises(FetchError, match=f"{TEXT_FILE}: HTTP 404"):
        fetch_clip(tmp_path, lambda _: None, base_url=release.url)
    assert list((tmp_path / "clip").iterdir()) == []


def test_wrong_files_on_the_server_are_refused(release: Release, tmp_path: Path):
    shutil.copy(TEXT_ONNX, release.root / "v1.1.0" / IMAGE_FILE)
    with pytest.raises(FetchError, match="expected \\['image'\\]"):
        fetch_clip(tmp_path, lambda _: None, base_url=release.url)
    assert not (tmp_path / "clip" / MANIFEST_NAME).exists()


def test_checkpoint_export_needs_torch_and_cn_clip(tmp_path: Path):
    with pytest.raises(FetchError, match="does not exist"):
        fetch_clip(tmp_path, lambda _: None, checkpoint=tmp_path / "nope.pt")
    checkpoint = tmp_path / "clip_cn_vit-b-16.pt"
    checkpoint.write_bytes(b"weights")
    with pytest.raises(FetchError, match=r"(?s)exit code 2.*needs torch and cn_clip") as caught:
        fetch_clip(tmp_path, lambda _: None, checkpoint=checkpoint)
    assert "CLIP_MODEL_URL=file:///" in str(caught.value)
    assert list((tmp_path / "clip").iterdir()) == []


def fake_exporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str) -> Path:
    """Run ``code`` as the export module in the child; return a checkpoint to hand it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "fake_export.py").write_text(f"FIXTURES = {str(IMAGE_ONNX.parent)!r}\n{code}")
    monkeypatch.setattr(clip_fetch, "EXPORT_MODULE", "fake_export")
    monkeypatch.setenv("PYTHONPATH", str(site))
    checkpoint = tmp_path / "clip_cn_vit-b-16.pt"
    checkpoint.write_bytes(b"weights")
    return checkpoint


def test_checkpoint_export_installs_what_the_child_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A stand-in exporter copies the tiny pair: this checks the plumbing around the child."""
    checkpoint = fake_exporter(tmp_path, monkeypatch, FAKE_EXPORT)
    messages: list[str] = []
    target = fetch_clip(tmp_path / "models", messages.append, checkpoint=checkpoint)
    manifest = Manifest.load(target / MANIFEST_NAME)
    assert manifest.models["image"].source == f"export:{checkpoint.resolve()}"
    assert manifest.models["image"].sha256 == sha256_file(IMAGE_ONNX)
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [IMAGE_FILE, TEXT_FILE, VOCAB_FILE, MANIFEST_NAME]
    )
    assert "exported and ready" in messages[-1]


def test_failing_export_shows_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    checkpoint = fake_exporter(tmp_path, monkeypatch, "raise SystemExit('no torch here')\n")
    with pytest.raises(FetchError, match=r"(?s)exit code 1.*no torch here"):
        fetch_clip(tmp_path / "models", lambda _: None, checkpoint=checkpoint)
    assert not (tmp_path / "models" / "clip" / MANIFEST_NAME).exists()


def test_leftovers_of_a_killed_run_are_swept(release: Release, tmp_path: Path):
    stale = tmp_path / "clip" / ".fetch-abc123"
    stale.mkdir(parents=True)
    (stale / IMAGE_FILE).write_bytes(b"half")
    fetch_clip(tmp_path, lambda _: None, base_url=release.url)
    assert not stale.exists()
