"""`mtai`: the one command systemd and `make run` call, plus model management."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from models.manifest import default_model_dir


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
