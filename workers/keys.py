"""CURVE keys for remote worker nodes: this machine's key pair and the node keys it authorises.

The key directory (``NODE_KEYS``, mode 0700) holds, in the certificate format of ZeroMQ's own
tools (written and read through ``zmq.auth``)::

    this.key, this.key_secret   this machine's key pair; the secret file is mode 0600
    authorized/<name>.key       on the main board: one public key per node allowed to join

Keys are made by libzmq (``zmq.curve_keypair``) and used only through ZeroMQ's CURVE mechanism:
no cryptography is done here. The same commands run on both boards (`mtai keys init`,
`mtai keys add`); the broker rereads ``authorized/`` whenever it changes, so adding or removing
a node needs no restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shlex
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

log = logging.getLogger("mtai.keys")

OWN_NAME = "this"
AUTHORIZED = "authorized"
KEY_SUFFIX = ".key"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
KEY_ID_CHARS = 8
# A public key that starts with "-" reads as an option on a command line (`mtai keys add KEY`,
# `--server-key KEY`): such a pair (1 in 85) is made again, a negligible cut of the key space.
MAKE_ATTEMPTS = 64


class KeyProblem(ValueError):
    """A key or key directory that cannot be used; the message says what to do."""


def check_public_key(text: str) -> str:
    """A Z85 CURVE public key (40 characters, 32 bytes), as `mtai keys init` prints it."""
    key = text.strip()
    try:
        if len(key) != 40 or len(z85.decode(key)) != 32:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise KeyProblem(f"{text!r} is not a CURVE public key: expected the 40 characters "
                         "`mtai keys init` prints on its last line") from None
    return key


def key_id(key: str | bytes) -> str:
    """The short form shown in logs and on the status page: the key's first characters."""
    text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
    return text[:KEY_ID_CHARS]


def secure_directory(directory: Path) -> Path:
    """Create the key directory (and ``authorized/``) with mode 0700, or tighten its mode."""
    for path in (directory, directory / AUTHORIZED):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o077:
            log.warning("%s was readable by others; mode set to 0700", path)
            path.chmod(0o700)
        _adopt(path)
    return directory


def ensure_keypair(directory: Path) -> tuple[bytes, bytes]:
    """This machine's (public, secret) Z85 keys, made on first use."""
    secure_directory(directory)
    secret_file = directory / f"{OWN_NAME}.key_secret"
    if not secret_file.exists():
        old_umask = os.umask(0o077)  # the secret file is never readable by others, not even briefly
        try:
            for _ in range(MAKE_ATTEMPTS):
                public_path, secret_path = zmq.auth.create_certificates(str(directory), OWN_NAME)
                public = zmq.auth.load_certificate(public_path)[0]
                if not public.startswith(b"-"):
                    break
        finally:
            os.umask(old_umask)
        Path(public_path).chmod(0o644)
        for path in (public_path, secret_path):
            _adopt(Path(path))
        log.info("made this machine's CURVE key pair in %s", directory)
    return load_keypair(directory)


def load_keypair(directory: Path) -> tuple[bytes, bytes]:
    secret_file = directory / f"{OWN_NAME}.key_secret"
    try:
        public, secret = zmq.auth.load_certificate(str(secret_file))
    except (OSError, ValueError) as exc:
        raise KeyProblem(f"no key pair in {directory} ({exc}); run `mtai keys init`") from None
    if secret is None:
        raise KeyProblem(f"{secret_file} holds no secret key; remove it and run `mtai keys init`")
    if secret_file.stat().st_mode & 0o077:
        secret_file.chmod(0o600)
    return public, secret


def authorise(directory: Path, key: str, name: str | None = None) -> Path:
    """Let the node with public ``key`` join; returns the file written."""
    key = check_public_key(key)
    secure_directory(directory)
    own = directory / f"{OWN_NAME}{KEY_SUFFIX}"
    if own.exists() and zmq.auth.load_certificate(str(own))[0].decode() == key:
        raise KeyProblem("that is this machine's own key: run `mtai keys init` on the node and "
                         "add the key it prints")
    name = name or default_name(key)
    if not NAME_PATTERN.fullmatch(name):
        raise KeyProblem(f"name {name!r}: use letters, digits, '.', '_' or '-' (64 at most)")
    target = directory / AUTHORIZED / f"{name}{KEY_SUFFIX}"
    for other, existing in authorised_keys(directory).items():
        if existing == key and other != name:
            raise KeyProblem(f"that key is authorised already as {other!r}")
    text = f"# mtai node {name}, authorised by `mtai keys add`\ncurve\n    public-key = \"{key}\"\n"
    _write_atomic(target, text)
    return target


def revoke(directory: Path, key_or_name: str) -> list[str]:
    """Remove a node's key (by key or by name); returns the names removed."""
    removed = []
    for name, key in authorised_keys(directory).items():
        if key_or_name.strip() in (name, key):
            (directory / AUTHORIZED / f"{name}{KEY_SUFFIX}").unlink()
            removed.append(name)
    return removed


def authorised_keys(directory: Path) -> dict[str, str]:
    """name -> Z85 public key of every authorised node; unreadable files are logged, skipped."""
    found: dict[str, str] = {}
    folder = directory / AUTHORIZED
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob(f"*{KEY_SUFFIX}")):
        try:
            public, _ = zmq.auth.load_certificate(str(path))
            found[path.name[: -len(KEY_SUFFIX)]] = check_public_key(public.decode("ascii"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            log.error("ignoring %s: %s", path, exc)
    return found


def add_command(key: str) -> str:
    """What to run on the main board so that it lets the node with this key join (Z85 keys hold
    characters a shell would expand: quoted)."""
    return f"mtai keys add {shlex.quote(key)}"


def default_name(key: str) -> str:
    return "node-" + hashlib.sha256(key.encode()).hexdigest()[:10]


@dataclass
class AuthorisedKeys:
    """The broker's view of ``authorized/``, reread when the directory changes."""

    directory: Path
    names: dict[str, str] = field(default_factory=dict)  # key -> name
    stamp: frozenset[tuple[str, int, int]] | None = None

    def reload(self) -> bool:
        """Reread if the folder's key files changed since the last look; True when the set
        changed. The stamp is each key file's name, inode and mtime, not the folder's mtime:
        `mtai keys add` changes the folder twice within one clock tick (temporary file, then
        rename), and a look between the two would leave the same folder mtime behind."""
        folder = self.directory / AUTHORIZED
        try:
            with os.scandir(folder) as entries:
                stamp = frozenset((e.name, e.inode(), e.stat().st_mtime_ns) for e in entries
                                  if e.name.endswith(KEY_SUFFIX))
        except FileNotFoundError:
            stamp = None
        except OSError as exc:  # unreadable (permissions): said once, until it changes
            stamp = frozenset({(f"unreadable: {exc}", 0, 0)})
            if stamp != self.stamp:
                log.error("cannot read %s: %s", folder, exc)
        if stamp == self.stamp and self.stamp is not None:
            return False
        self.stamp = stamp
        names = {key: name for name, key in authorised_keys(self.directory).items()}
        changed = names != self.names
        if changed:
            log.info("%d node key(s) authorised in %s: %s", len(names), folder,
                     ", ".join(f"{n} ({key_id(k)})" for k, n in names.items()) or "none")
        self.names = names
        return changed

    def __contains__(self, key: object) -> bool:
        return key in self.names

    def name(self, key: str) -> str:
        return self.names.get(key, "")


def advertised(listen: str) -> str:
    """The address a node should connect to: NODE_LISTEN with a wildcard host replaced by this
    machine's address on its default route (no packet is sent)."""
    host, _, port = listen.removeprefix("tcp://").rpartition(":")
    if host not in ("*", "0.0.0.0", "[::]", "::"):
        return listen
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only, nothing is transmitted
        return f"tcp://{probe.getsockname()[0]}:{port}"
    return f"tcp://{socket.gethostname()}:{port}"


def node_command(listen: str, server_key: str) -> str:
    """What to run on a node so that it joins the broker listening on ``listen``."""
    return f"mtai node --connect {advertised(listen)} --server-key {shlex.quote(server_key)}"


def _write_atomic(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        _adopt(Path(tmp))
        os.replace(tmp, target)  # a new directory entry: the broker's reload sees it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _adopt(path: Path) -> None:
    """Run as root (`sudo mtai keys ...`), give what we made to the owner of the folder it is
    in, so the service user can still read it."""
    if os.geteuid() != 0:
        return
    owner = path.parent.stat()
    if (path.stat().st_uid, path.stat().st_gid) != (owner.st_uid, owner.st_gid):
        os.chown(path, owner.st_uid, owner.st_gid)
