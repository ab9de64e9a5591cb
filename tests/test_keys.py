"""The key directory and `mtai keys`: modes, the last line of `keys init`, what `keys add`
accepts, the command it prints for the other side, and the broker's reload of authorised keys."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import zmq.auth

from workers import keys
from workers.cli import main


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def mtai(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, directory: Path,
         *argv: str, **env: str) -> tuple[int, str, str]:
    monkeypatch.setenv("NODE_KEYS", str(directory))
    for name in ("NODE_LISTEN",):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_makes_a_private_key_pair_once_and_prints_the_key_last(tmp_path, monkeypatch,
                                                                     capsys):
    directory = tmp_path / "keys"
    code, out, _ = mtai(monkeypatch, capsys, directory, "keys", "init")
    assert code == 0
    key = out.splitlines()[-1]
    assert len(key) == 40 and keys.check_public_key(key) == key
    assert mode(directory) == 0o700 and mode(directory / "authorized") == 0o700
    assert mode(directory / "this.key_secret") == 0o600
    public, secret = zmq.auth.load_certificate(str(directory / "this.key_secret"))
    assert public.decode() == key and secret is not None
    assert f"mtai keys add {shlex.quote(key)}" in out  # the command for the other board
    again = mtai(monkeypatch, capsys, directory, "keys", "init")[1]
    assert again.splitlines()[-1] == key  # never replaced


def test_a_public_key_never_starts_like_a_command_line_option(tmp_path, monkeypatch):
    real = zmq.curve_keypair
    # Z85 has "-" among its 85 characters: real pairs must not start with it either, or the
    # count below would depend on chance
    made = [pair for pair in (real() for _ in range(50)) if not pair[0].startswith(b"-")][:3]
    dash = (b"-" + real()[0][1:], real()[1])
    pairs = [dash, dash, *made]
    monkeypatch.setattr(zmq, "curve_keypair", lambda: pairs.pop(0))
    public, _ = keys.ensure_keypair(tmp_path)
    assert not public.startswith(b"-") and len(pairs) == 2  # made again, twice


def test_a_loose_key_directory_is_tightened(tmp_path):
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    keys.ensure_keypair(directory)
    assert mode(directory) == 0o700


def test_add_authorises_a_node_and_prints_the_command_for_it(tmp_path, monkeypatch, capsys):
    node_key = mtai(monkeypatch, capsys, tmp_path / "node", "keys", "init")[1].splitlines()[-1]
    code, out, _ = mtai(monkeypatch, capsys, tmp_path / "main", "keys", "add", node_key,
                        "--name", "board-2", NODE_LISTEN="tcp://10.0.0.5:5570")
    assert code == 0
    assert keys.authorised_keys(tmp_path / "main") == {"board-2": node_key}
    server = keys.load_keypair(tmp_path / "main")[0].decode()
    command = out.splitlines()[-1].strip()
    assert shlex.split(command) == ["mtai", "node", "--connect", "tcp://10.0.0.5:5570",
                                    "--server-key", server]
    listed = mtai(monkeypatch, capsys, tmp_path / "main", "keys", "list")[1]
    assert f"this machine: {server}" in listed and f"{node_key}  board-2" in listed


def test_add_without_node_listen_says_how_to_turn_it_on(tmp_path, monkeypatch, capsys):
    node_key = keys.ensure_keypair(tmp_path / "node")[0].decode()
    out = mtai(monkeypatch, capsys, tmp_path / "main", "keys", "add", node_key)[1]
    assert "NODE_LISTEN is not set here: set NODE_LISTEN=tcp://0.0.0.0:5570" in out
    assert "--server-key" in out.splitlines()[-1]


@pytest.mark.parametrize("bad", ["", "abc", "x" * 40 + "y", "é" * 40, "'" * 40])
def test_add_refuses_what_is_not_a_public_key(tmp_path, monkeypatch, capsys, bad):
    code, _, err = mtai(monkeypatch, capsys, tmp_path / "main", "keys", "add", bad)
    assert code == 1 and "is not a CURVE public key" in err
    assert keys.authorised_keys(tmp_path / "main") == {}


def test_add_refuses_our_own_key_a_duplicate_and_a_bad_name(tmp_path):
    own = keys.ensure_keypair(tmp_path)[0].decode()
    with pytest.raises(keys.KeyProblem, match="this machine's own key"):
        keys.authorise(tmp_path, own)
    other = keys.ensure_keypair(tmp_path / "other")[0].decode()
    keys.authorise(tmp_path, other, "a")
    with pytest.raises(keys.KeyProblem, match="authorised already as 'a'"):
        keys.authorise(tmp_path, other, "b")
    with pytest.raises(keys.KeyProblem, match="name"):
        keys.authorise(tmp_path, keys.ensure_keypair(tmp_path / "x")[0].decode(), "../etc")


def test_the_brokers_view_follows_adds_and_removals(tmp_path):
    node = keys.ensure_keypair(tmp_path / "node")[0].decode()
    view = keys.AuthorisedKeys(tmp_path / "main")
    view.reload()
    assert node not in view and not view.reload()  # nothing changed: no reread
    keys.authorise(tmp_path / "main", node, "n1")
    assert view.reload() and node in view and view.name(node) == "n1"
    assert keys.revoke(tmp_path / "main", "n1") == ["n1"]
    assert view.reload() and node not in view


def test_a_damaged_key_file_is_skipped_not_fatal(tmp_path, caplog):
    node = keys.ensure_keypair(tmp_path / "node")[0].decode()
    keys.authorise(tmp_path / "main", node, "good")
    (tmp_path / "main/authorized/bad.key").write_text("curve\n    public-key = \"short\"\n")
    assert keys.authorised_keys(tmp_path / "main") == {"good": node}
    assert "ignoring" in caplog.text and "bad.key" in caplog.text


def test_remove_names_what_it_removed(tmp_path, monkeypatch, capsys):
    node = keys.ensure_keypair(tmp_path / "node")[0].decode()
    keys.authorise(tmp_path / "main", node, "n1")
    code, out, _ = mtai(monkeypatch, capsys, tmp_path / "main", "keys", "remove", node)
    assert code == 0 and "Removed n1" in out
    code, _, err = mtai(monkeypatch, capsys, tmp_path / "main", "keys", "remove", node)
    assert code == 1 and "no authorised key" in err


def test_the_advertised_address_replaces_only_a_wildcard():
    assert keys.advertised("tcp://192.168.1.4:5570") == "tcp://192.168.1.4:5570"
    host = keys.advertised("tcp://0.0.0.0:5571").removeprefix("tcp://")
    assert host.endswith(":5571") and not host.startswith("0.0.0.0")


def test_the_brokers_view_sees_a_key_added_within_one_tick_of_its_last_look(tmp_path):
    """The folder's mtime can stay the same across `keys add` (temporary file, rename, one
    clock tick): the view compares the key files themselves."""
    node = keys.ensure_keypair(tmp_path / "node")[0].decode()
    keys.authorise(tmp_path / "main", keys.ensure_keypair(tmp_path / "first")[0].decode(), "a")
    folder = tmp_path / "main/authorized"
    view = keys.AuthorisedKeys(tmp_path / "main")
    view.reload()
    before = folder.stat()
    keys.authorise(tmp_path / "main", node, "n2")
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if in the same tick
    assert view.reload() and node in view
