"""`mtai doctor`: what this machine offers the NPU backend, and what stands in its way.

Each check reads one thing (device tree, RKNPU driver, librknnrt, rknnlite, model files) and says
ok, a warning, or a problem with the fix. Problems make the exit code non-zero. All system paths
hang off ``root`` so tests can run the checks against a fake /proc and /sys tree.

The supervisor runs the cheap ones (``system_findings``: no model file is hashed) for the status
page's headline, so the page and `mtai doctor` judge the machine with the same code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.manifest import MANIFEST_NAME, Manifest, ManifestError, ModelNotInstalled, family_dir
from models.ocr.generations import is_ocr_family
from models.runtime import rknpu
from models.runtime.artifacts import BUILD_NAME, BuildRecord
from models.runtime.parts import base_role
from models.runtime.soc import (
    RKNN_DIR_PREFIX,
    choose_backend,
    npu_cores,
    read_board,
    read_soc,
    rknnlite_status,
)

OK, INFO, WARN, PROBLEM = "ok", "info", "warn", "PROBLEM"
LIBRKNNRT_DIRS = ("usr/lib", "usr/lib64", "usr/local/lib", "usr/lib/aarch64-linux-gnu")
_RT_VERSION = re.compile(rb"librknnrt version: ([0-9][0-9A-Za-z.+_-]*)(?: \(([^)\x00\n]*)\))?")
ONNX_FAMILIES = ("clip", "face")  # checked after the configured OCR family
DEBUGFS_VERSION = rknpu.DEBUGFS / "version"


@dataclass(frozen=True)
class Finding:
    """One check's result. ``headline`` is the short sentence the status page shows when this
    finding is the worst one (default: topic and detail); ``fix`` the one command or step
    that mends it, when there is one and ``detail`` does not already end with it."""

    status: str
    topic: str
    detail: str
    fix: str = ""
    headline: str = ""

    def line(self) -> str:
        fix = f"; {self.fix}" if self.fix and self.fix not in self.detail else ""
        return f"[{self.status:^7}] {self.topic}: {self.detail}{fix}"

    def summary(self) -> str:
        return self.headline or f"{self.topic}: {self.detail}"


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("(")[0])[:3])


def librknnrt(root: Path) -> tuple[Path | None, str | None]:
    """The first librknnrt.so in the usual places, and the version string inside it."""
    for directory in LIBRKNNRT_DIRS:
        path = root / directory / "librknnrt.so"
        if path.is_file():
            try:
                match = _RT_VERSION.search(path.read_bytes())
            except OSError:
                return path, None
            if match is None:
                return path, None
            version = match.group(1).decode()
            build = f" ({match.group(2).decode()})" if match.group(2) else ""
            return path, version + build
    return None, None


def _read(path: Path) -> tuple[str | None, str | None]:
    """(content, None) or (None, why not)."""
    try:
        return path.read_text(errors="replace").strip(), None
    except PermissionError:
        return None, "not readable (run `sudo mtai doctor`)"
    except OSError as exc:
        return None, f"absent ({exc.strerror or exc})"


def check_system(root: Path, privileged: bool = True
                 ) -> tuple[list[Finding], str | None, str | None]:
    """SoC, driver, librknnrt and rknnlite findings; also the SoC and the librknnrt version.
    ``privileged``: run as root, where an unreadable debugfs is worth a warning (the service
    runs as its own user, for whom it is the rule)."""
    found: list[Finding] = []
    compatible = root / "proc/device-tree/compatible"
    soc = read_soc(compatible)
    board = read_board(root / "proc/device-tree/model")
    need = PROBLEM if soc else INFO  # without a supported SoC the NPU pieces are optional
    if soc:
        cores = npu_cores(soc)
        found.append(Finding(OK, "SoC", f"{soc} ({board or 'board unknown'}), {cores} NPU core"
                                        f"{'s' if cores > 1 else ''}"))
    else:
        raw, why = _read(compatible)
        names = raw.replace("\0", " ").strip() if raw else f"/proc/device-tree/compatible {why}"
        found.append(Finding(INFO, "SoC", f"no supported Rockchip SoC ({names}); the CPU "
                                          "backend (onnxruntime) serves"))
    version = rknpu.read("version", root)
    if version.text:
        found.append(Finding(OK, "NPU driver", version.text))
        load = rknpu.load(root)
        if load.cores is not None:
            found.append(Finding(INFO, "NPU load", load.line()))
    elif soc:
        hint = " (run `sudo mtai doctor`)" if version.denied else ""
        found.append(Finding(WARN if privileged or not version.denied else INFO, "NPU driver",
                             f"/{DEBUGFS_VERSION} {version.why}{hint}"))
    path, rt_version = librknnrt(root)
    if path is None:
        where = ", ".join(f"/{d}" for d in LIBRKNNRT_DIRS)
        found.append(Finding(need, "librknnrt", f"librknnrt.so not found in {where}; install "
                             "it from Rockchip's rknn-toolkit2 (rknpu2/runtime)"))
    else:
        shown = f"/{path.relative_to(root)} version {rt_version or 'unknown'}"
        found.append(Finding(OK if rt_version else WARN, "librknnrt", shown))
    ok, detail = rknnlite_status()
    found.append(Finding(OK, "rknnlite", f"rknn-toolkit-lite2 {detail}") if ok else Finding(
        need, "rknnlite", f"does not import ({detail}); pip install 'mtai-rknn[rknn]' on aarch64"))
    return found, soc, rt_version


def check_models(model_dir: Path, rt_version: str | None,
                 ocr_family: str = "ocr") -> list[Finding]:
    """ONNX families and converted families against their manifests (sha256): the configured
    OCR model (``ocr_family``), CLIP and faces, then any other OCR model installed beside them."""
    found: list[Finding] = []
    others = sorted(p.parent.name for p in Path(model_dir).glob(f"ocr*/{MANIFEST_NAME}")
                    if p.parent.name != ocr_family and is_ocr_family(p.parent.name))
    for family in (ocr_family, *ONNX_FAMILIES, *others):
        kind = "ocr" if is_ocr_family(family) else family
        found.append(_verify(f"models {family}", family_dir(model_dir, family),
                             f"mtai models fetch {kind}"))
    for root in sorted(Path(model_dir).glob(f"{RKNN_DIR_PREFIX}*")):
        for manifest in sorted(root.glob(f"*/{MANIFEST_NAME}")):
            directory = manifest.parent
            topic = f"converted {root.name}/{directory.name}"
            finding = _verify(topic, directory, "mtai convert")
            found.append(finding)
            if finding.status == OK:
                found.extend(_build_findings(topic, directory, model_dir, rt_version))
    return found


def _verify(topic: str, directory: Path, fix: str) -> Finding:
    try:
        manifest = Manifest.load(directory / MANIFEST_NAME)
        manifest.verify(directory)
    except ModelNotInstalled as exc:
        status = WARN if "ocr" in topic else INFO
        return Finding(status, topic, f"not installed ({exc}); `{fix}`")
    except (ManifestError, OSError, RuntimeError) as exc:
        return Finding(PROBLEM, topic, f"{exc}; `{fix}`")
    files = ", ".join(spec.file for spec in manifest.models.values())
    return Finding(OK, topic, f"sha256 verified: {files}")


def _build_findings(topic: str, directory: Path, model_dir: Path,
                    rt_version: str | None) -> list[Finding]:
    try:
        record = BuildRecord.load(directory / BUILD_NAME)
    except ManifestError as exc:
        return [Finding(PROBLEM, topic, str(exc))]
    found = []
    if rt_version and version_tuple(rt_version) < version_tuple(record.toolkit):
        found.append(Finding(PROBLEM, topic, f"built by rknn-toolkit2 {record.toolkit}, "
                             f"newer than librknnrt {rt_version}: update librknnrt"))
    for role, entry in record.models.items():
        if entry.kept_onnx:
            found.append(Finding(INFO, topic, f"{role} runs on the CPU: {entry.kept_onnx}"))
        source = directory / entry.plan.onnx
        try:
            onnx_manifest = Manifest.load(source.parent / MANIFEST_NAME)
            installed = onnx_manifest.models[base_role(role)].sha256
        except (ManifestError, ModelNotInstalled, KeyError):
            continue
        if installed != entry.plan.onnx_sha256:
            found.append(Finding(WARN, topic, f"{role} was converted from another "
                                 f"{source.name} than the one installed; `mtai convert` again"))
    return found


def diagnose(model_dir: Path, root: Path = Path("/"), configured: str = "auto",
             ocr_family: str = "ocr") -> list[Finding]:
    """Every finding, system first, then models, then what BACKEND=auto would pick
    (``configured``: the BACKEND setting)."""
    system, soc, rt_version = check_system(Path(root))
    return (system + check_models(model_dir, rt_version, ocr_family)
            + backend_findings(model_dir, Path(root), soc, configured))


def system_findings(model_dir: Path, root: Path = Path("/"), configured: str = "auto",
                    privileged: bool = True) -> list[Finding]:
    """``diagnose`` without the model files' hashes: cheap enough for the running service."""
    system, soc, _ = check_system(Path(root), privileged)
    return system + backend_findings(model_dir, Path(root), soc, configured)


def backend_findings(model_dir: Path, root: Path, soc: str | None,
                     configured: str) -> list[Finding]:
    """What BACKEND=auto picks and why; an NPU board left on the CPU is a problem, unless
    the user chose a backend on purpose."""
    choice = choose_backend(model_dir, root / "proc/device-tree/compatible")
    unused = soc is not None and choice.backend != "rknn" and configured == "auto"
    headline = ""
    if unused:
        headline = f"running on the CPU although this is an {soc.upper()}: {choice.blocker}"
    found = [Finding(PROBLEM if unused else OK, "BACKEND=auto",
                     f"{choice.backend}: {choice.reason}", choice.fix if unused else "",
                     headline)]
    if configured != "auto":
        found.append(Finding(INFO, "BACKEND", f"set to {configured} in the environment"))
    return found


def run(model_dir: Path, root: Path = Path("/"), write: Callable[[str], None] = print,
        configured: str = "auto", extra: Sequence[Finding] = (), ocr_family: str = "ocr") -> int:
    """Print the findings (and ``extra`` ones the caller made, e.g. of the running service);
    1 when any is a problem."""
    findings = [*diagnose(model_dir, root, configured, ocr_family), *extra]
    for finding in findings:
        write(finding.line())
    problems = sum(f.status == PROBLEM for f in findings)
    worst = headline(findings)
    if problems and worst is not None:
        fix = f" (fix: {worst.fix})" if worst.fix else ""
        write(f"{problems} problem{'s' if problems != 1 else ''} found; first: "
              f"{worst.summary()}{fix}")
    else:
        write("no problems")
    return 1 if problems else 0


def headline(findings: Sequence[Finding]) -> Finding | None:
    """The finding a person should read first: the first problem, else the first warning.
    `mtai doctor`'s last line and the status page's headline both come from here."""
    for level in (PROBLEM, WARN):
        for finding in findings:
            if finding.status == level:
                return finding
    return None
