"""`mtai doctor` against fake /proc and /sys trees and a fake rknnlite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from models.doctor import OK, PROBLEM, diagnose, run
from tests import fake_rknnlite
from tests.clip_fixtures import install_tiny
from tests.rknn_fixtures import board, deny_rknpu_reads, fake_convert
from workers.cli import main


@pytest.fixture()
def models(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    install_tiny(directory)
    fake_convert(directory, "clip")
    return directory


def by_topic(findings) -> dict[str, list]:
    table: dict[str, list] = {}
    for finding in findings:
        table.setdefault(finding.topic, []).append(finding)
    return table


def test_healthy_board_has_no_problems(tmp_path, models, monkeypatch, capsys):
    fake_rknnlite.install(monkeypatch)
    root = board(tmp_path / "root")
    monkeypatch.setenv("MODEL_DIR", str(models))
    assert main(["doctor", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "rk3588 (Orange Pi 5), 3 NPU cores" in out
    assert "RKNPU driver: v0.9.8" in out and "Core0: 3%" in out
    assert "/usr/lib/librknnrt.so version 2.5.0 (c949ad889d@2024-11-07T11:35:33)" in out
    assert "converted rknn-rk3588/clip: sha256 verified" in out
    assert "BACKEND=auto: rknn: rk3588" in out and out.rstrip().endswith("no problems")


def test_runtime_older_than_the_toolkit_is_a_problem(tmp_path, models, monkeypatch):
    fake_rknnlite.install(monkeypatch)
    root = board(tmp_path / "root", runtime=b"2.3.0")
    findings = by_topic(diagnose(models, root))
    (older,) = [f for f in findings["converted rknn-rk3588/clip"] if f.status == PROBLEM]
    assert "built by rknn-toolkit2 2.5.0, newer than librknnrt 2.3.0" in older.detail
    assert run(models, root, write=lambda _: None) == 1


def test_missing_pieces_on_a_board_are_problems(tmp_path, models, monkeypatch):
    for name in ("rknnlite", "rknnlite.api"):
        monkeypatch.setitem(sys.modules, name, None)
    root = board(tmp_path / "root", runtime=None, driver=False)
    findings = by_topic(diagnose(models, root))
    assert findings["librknnrt"][0].status == PROBLEM
    assert findings["rknnlite"][0].status == PROBLEM
    assert findings["NPU driver"][0].status == "warn"  # debugfs may just be unmounted
    auto = findings["BACKEND=auto"][0]
    assert auto.status == PROBLEM and "does not import" in auto.detail


def test_damaged_model_file_is_a_problem(tmp_path, models, monkeypatch):
    fake_rknnlite.install(monkeypatch)
    root = board(tmp_path / "root")
    with open(models / "rknn-rk3588/clip/vit-b-16.img.rknn", "ab") as fh:
        fh.write(b"x")
    (finding,) = by_topic(diagnose(models, root))["converted rknn-rk3588/clip"]
    assert finding.status == PROBLEM
    assert "sha256" in finding.detail and "mtai convert" in finding.detail


def test_converted_from_an_older_onnx_is_flagged(tmp_path, models, monkeypatch):
    fake_rknnlite.install(monkeypatch)
    root = board(tmp_path / "root")
    install_tiny(models)  # same files: no warning
    converted = by_topic(diagnose(models, root))["converted rknn-rk3588/clip"]
    assert all(f.status == OK for f in converted)
    manifest = models / "clip/manifest.json"
    manifest.write_text(manifest.read_text().replace(
        '"sha256": "8dbaf06f', '"sha256": "0000000f'))  # as if another image model was fetched
    details = [f.detail for f in by_topic(diagnose(models, root))["converted rknn-rk3588/clip"]]
    assert any("converted from another" in d for d in details)


def test_pc_without_npu_is_fine(tmp_path, models):
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    findings = diagnose(models, root)
    assert not [f for f in findings if f.status == PROBLEM]
    assert by_topic(findings)["BACKEND=auto"][0].detail.startswith("onnx: ")


def test_unreadable_debugfs_says_run_as_root(tmp_path, models, monkeypatch):
    fake_rknnlite.install(monkeypatch)
    root = board(tmp_path / "root", driver=False)
    deny_rknpu_reads(monkeypatch)
    (finding,) = by_topic(diagnose(models, root))["NPU driver"]
    assert finding.status == "warn" and "sudo mtai doctor" in finding.detail


def test_a_backend_chosen_on_purpose_is_not_a_problem(tmp_path, models, monkeypatch):
    for name in ("rknnlite", "rknnlite.api"):
        monkeypatch.setitem(sys.modules, name, None)
    root = board(tmp_path / "root")
    table = by_topic(diagnose(models, root, configured="onnx"))
    assert table["BACKEND=auto"][0].status == OK
    assert table["BACKEND"][0].detail.startswith("set to onnx")
    assert table["rknnlite"][0].status == PROBLEM  # still reported: the NPU cannot be used


def test_face_family_is_listed_installed_or_not(tmp_path, monkeypatch, capsys):
    from tests.face_fixtures import install_tiny as install_face

    models = tmp_path / "models"
    monkeypatch.setenv("MODEL_DIR", str(models))
    main(["doctor", "--root", str(tmp_path / "root")])
    assert "models face: not installed" in capsys.readouterr().out
    install_face(models, tmp_path / "face-src")
    main(["doctor", "--root", str(tmp_path / "root")])
    out = capsys.readouterr().out
    assert "models face: sha256 verified: det_10g.onnx, w600k_r50.onnx" in out
    assert "`mtai models fetch face`" not in out
def test_doctor_checks_the_configured_ocr_model(tmp_path, models, model_dir, monkeypatch,
                                               capsys):
    (models / "ocr").symlink_to(model_dir / "ocr", target_is_directory=True)
    fake_rknnlite.install(monkeypatch)
    root = board(tmp_path / "root")
    monkeypatch.setenv("MODEL_DIR", str(models))
    monkeypatch.setenv("OCR_MODEL", "ppocrv5-mobile")
    main(["doctor", "--root", str(root)])
    out = capsys.readouterr().out
    assert "models ocr-ppocrv5-mobile: not installed" in out and "`mtai models fetch ocr`" in out
    assert "models ocr: sha256 verified" in out  # v4, installed beside it
