"""`mtai`: the one command systemd and `make run` call, plus model management."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from models.manifest import default_model_dir
from models.runtime.soc import SUPPORTED_SOCS


def serve(args: argparse.Namespace) -> int:
    from workers.config import Settings
    from workers.supervisor import Supervisor

    return Supervisor(Settings.from_env()).run()


def fetch_models(args: argparse.Namespace) -> int:
    from models.fetch import FetchError, fetch_clip, fetch_ocr

    target = default_model_dir()
    try:
        if "ocr" in args.families:
            fetch_ocr(target)
        if "clip" in args.families:
            fetch_clip(target, checkpoint=args.checkpoint)
    except FetchError as exc:
        print(f"mtai: {exc}", file=sys.stderr)
        return 1
    return 0


def convert(args: argparse.Namespace) -> int:
    from models.convert.convert import Samples
    from models.convert.run import convert_models

    unknown = sorted(set(args.families) - {"ocr", "clip"})
    if unknown:
        print(f"mtai convert: unknown family {', '.join(unknown)} (ocr, clip)", file=sys.stderr)
        return 2
    samples = Samples(ocr=args.ocr_samples, clip=args.clip_samples)
    return convert_models(default_model_dir(), args.families, args.target, samples)


def doctor(args: argparse.Namespace) -> int:
    from models.doctor import run

    return run(default_model_dir(), args.root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mtai", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="start the supervisor, workers and HTTP front").set_defaults(
        run=serve
    )
    models = commands.add_parser("models", help="manage model files in MODEL_DIR")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    fetch = model_commands.add_parser("fetch", help="download and verify model files")
    fetch.add_argument("families", nargs="*", default=["ocr"], choices=["ocr", "clip"],
                       help="model families (default: ocr; clip downloads about 700 MB)")
    fetch.add_argument("--checkpoint", type=Path, default=None,
                       help="export CLIP from this Chinese-CLIP .pt instead (needs torch, cn_clip)")
    fetch.set_defaults(run=fetch_models)
    conv = commands.add_parser("convert", help="convert the ONNX models in MODEL_DIR for the NPU "
                               "(rknn-toolkit2), self-checked in its simulator")
    conv.add_argument("families", nargs="*", metavar="{ocr,clip}", default=[],
                      help="model families (default: every family MODEL_DIR holds)")
    conv.add_argument("--target", nargs="+", default=["rk3588"],
                      choices=list(SUPPORTED_SOCS))
    conv.add_argument("--ocr-samples", type=Path, default=None,
                      help="images with text for the self-check (default: generated pages)")
    conv.add_argument("--clip-samples", type=Path, default=None,
                      help="photos for the self-check (default: generated pictures)")
    conv.set_defaults(run=convert)
    doc = commands.add_parser("doctor", help="check the SoC, NPU driver, librknnrt, rknnlite "
                              "and model files; non-zero exit on a problem")
    doc.add_argument("--root", type=Path, default=Path("/"), help=argparse.SUPPRESS)
    doc.set_defaults(run=doctor)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),  # LOG_LEVEL: DEBUG, INFO, WARNING
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
