"""Session fixtures: the real OCR models (fetched once) and the real running service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.fetch import fetch_ocr
from protocol.settings import Settings
from tests.clip_fixtures import install_tiny
from tests.face_fixtures import install_tiny as install_tiny_faces
from tests.service import Service, start_service

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared beside the repo; missing test data is a failure, never a skip."""
    assert (SHARED / "testdata").is_dir(), f"test data missing: {SHARED / 'testdata'}"
    return SHARED


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """MODEL_DIR if set, else the development default; the real fetch runs (idempotent)."""
    directory = Settings.from_env().model_dir
    fetch_ocr(directory, progress=lambda message: None)
    return directory


@pytest.fixture(scope="session")
def full_model_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real OCR models plus the tiny generated Chinese-CLIP and face models, installed as
    fetch does.
    Kept apart from MODEL_DIR so `make run` never serves the random test model."""
    directory = tmp_path_factory.mktemp("models")
    (directory / "ocr").symlink_to(model_dir / "ocr", target_is_directory=True)
    install_tiny(directory)
    install_tiny_faces(directory, tmp_path_factory.mktemp("face-models"))
    return directory


@pytest.fixture(scope="session")
def service(full_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The whole service with three workers, as `mtai serve` runs it."""
    # No idle recycle: a pause between the tests that share it must not restart its workers.
    running = start_service(tmp_path_factory.mktemp("service"), full_model_dir, MAX_UPLOAD_MB="8",
                            SERVER_RESTART_TIME="0")
    try:
        running.wait_ready(workers=3)
        yield running
    finally:
        code = running.stop()
        assert code == 0, f"service exited with {code}:\n{running.tail()}"


# Fixtures that start real processes, and the tier a test using them must be marked with.
PROCESS_FIXTURES = {"service": "service", "farm": "service"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fast tier must stay fast: a test that starts the service without saying so is a
    collection error, not a surprise in `make test-fast`."""
    unmarked = [
        item.nodeid for item in items
        for fixture, tier in PROCESS_FIXTURES.items()
        if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(tier) is None
    ]
    if unmarked:
        raise pytest.UsageError("tests start the service but are not marked `service`: "
                                + ", ".join(unmarked))
