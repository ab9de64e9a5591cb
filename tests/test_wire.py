"""The wire format: round trips, and hostile frames that must raise ProtocolError only."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.wire import (
    ERROR,
    READY,
    REQUEST,
    VERSION,
    Message,
    ProtocolError,
    decode,
    decode_header,
    encode,
    peek_version,
)


def _header(**overrides):
    header = {"v": VERSION, "kind": REQUEST, "id": "abc", "task": "ocr", "arrays": []}
    header.update(overrides)
    return json.dumps(header).encode()


def test_round_trip_keeps_every_field_and_array():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    ids = np.array([[101, 7, 102]], dtype=np.int64)
    message = Message(REQUEST, "r1", task="ocr", options={"lang": "中文"}, deadline=12.5,
                      arrays=[image, ids])
    back = decode([bytes(f) for f in encode(message)])
    assert (back.kind, back.id, back.task, back.options, back.deadline) == (
        REQUEST, "r1", "ocr", {"lang": "中文"}, 12.5)
    assert back.arrays[0].dtype == np.uint8 and np.array_equal(back.arrays[0], image)
    assert back.arrays[1].dtype == np.int64 and np.array_equal(back.arrays[1], ids)


def test_non_contiguous_and_empty_arrays_survive():
    strided = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    empty = np.zeros((0, 3), dtype=np.float32)
    back = decode(encode(Message(READY, "w", arrays=[strided, empty])))
    assert np.array_equal(back.arrays[0], strided) and back.arrays[1].shape == (0, 3)


def test_reply_and_fail_keep_the_request_id():
    request = Message(REQUEST, "r9", task="ocr")
    assert decode(encode(request.reply({"lines": []}))).result == {"lines": []}
    failed = decode(encode(request.fail("busy", "queue full")))
    assert failed.kind == ERROR and failed.id == "r9" and failed.error["code"] == "busy"


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([], "no frames"),
        ([b"\xff\xfe"], "not valid JSON"),
        ([b"[1, 2]"], "not a JSON object"),
        ([_header(v=99)], "unsupported protocol version"),
        ([_header(kind="shout")], "unknown message kind"),
        ([_header(id="")], "message id"),
        ([_header(id=7)], "message id"),
        ([_header(id="x" * 500)], "message id"),
        ([_header(arrays=[{"dtype": "uint8", "shape": [2]}])], "names 1 arrays, got 0"),
        ([_header(arrays=[{"dtype": "uint8", "shape": [4]}]), b"abc"], "needs 4"),
        ([_header(arrays=[{"dtype": "object", "shape": [1]}]), b"a"], "unsupported dtype"),
        ([_header(arrays=[{"dtype": "uint8", "shape": [-1]}]), b""], "bad shape"),
        ([_header(arrays=[{"dtype": "uint8", "shape": [True]}]), b"a"], "bad shape"),
        ([_header(arrays=[{"dtype": "uint8", "shape": [1, 1, 1, 1, 1]}]), b"a"], "at most 4"),
        ([_header(arrays=[{"dtype": "float32", "shape": [2**20, 2**20]}]), b""], "exceeds"),
        ([_header(arrays=["nope"]), b""], "not an object"),
        ([_header(options=[1])], "options must be dict"),
        ([_header(deadline="soon")], "deadline must be a number"),
        ([_header(error={"code": 1})], "error must be an object"),
        ([b'{"v": 1, "kind": "request", "id": "a", "deadline": NaN}'], "non-finite"),
        ([b"[" * 100_000], "not valid JSON"),
        ([b" " * (300 * 1024)], "header too large"),
    ],
)
def test_malformed_frames_raise_a_clear_error(frames, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(frames)


def test_encode_refuses_what_decode_would_refuse():
    with pytest.raises(ProtocolError, match="unsupported dtype"):
        encode(Message(REQUEST, "a", arrays=[np.zeros(2, dtype=np.complex64)]))
    with pytest.raises(ProtocolError, match="unknown message kind"):
        encode(Message("shout", "a"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=0, max_size=4))
def test_random_bytes_never_escape_as_anything_but_protocol_error(frames):
    with contextlib.suppress(ProtocolError):
        decode(frames)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(
    ["v", "kind", "id", "task", "options", "deadline", "result", "error", "arrays"]),
    json_values), st.lists(st.binary(max_size=64), max_size=3))
def test_arbitrary_json_headers_are_validated(header, tail):
    with contextlib.suppress(ProtocolError):
        decode([json.dumps(header).encode(), *tail])


@pytest.mark.parametrize(
    "header",
    [
        b'{"v": 1, "kind": [], "id": "a"}',
        b'{"v": 1, "kind": {}, "id": "a"}',
        b'{"v": true, "kind": "request", "id": "a"}',
        b'{"v": 1, "kind": "request", "id": "a", "deadline": 1' + b"0" * 400 + b"}",
        b'{"v": 1, "kind": "request", "id": "a", "deadline": 1e999}',
        b'{"v": 1, "kind": "request", "id": "a", "x": ' + b"7" * 5000 + b"}",
        b'{"v": 1, "kind": "request", "id": "a", "arrays": [{"dtype": [], "shape": [1]}]}',
        b'{"v": 1, "kind": "request", "id": "a", "arrays": [{"dtype": "uint8", '
        b'"shape": [0, 9223372036854775808]}]}',
    ],
)
def test_type_confused_headers_raise_protocol_error_only(header):
    frames = [header] + ([b""] if b"arrays" in header else [])
    with pytest.raises(ProtocolError):
        decode(frames)


def test_decode_refuses_more_arrays_than_allowed():
    specs = [{"dtype": "uint8", "shape": [0]}] * 9
    with pytest.raises(ProtocolError, match="too many arrays"):
        decode([_header(arrays=specs), *([b""] * 9)])


def test_encode_refuses_non_finite_numbers_with_a_protocol_error():
    with pytest.raises(ProtocolError, match="cannot be encoded"):
        encode(Message(REQUEST, "a").reply({"score": float("nan")}))


@pytest.mark.parametrize(("frame", "version"), [
    (b'{"v": 2, "kind": "ready", "id": "n0"}', 2),
    (b'{"v": "1.0"}', "1.0"),
    (b'[1, 2]', None),
    (b"\xff\xfe", None),
    (b'{"kind": "ready"}', None),
])
def test_peek_version_reads_only_the_claimed_version(frame, version):
    """What lets the broker tell a node of another release why it is refused."""
    assert peek_version(frame) == version


def test_a_header_of_another_version_is_refused_but_its_version_can_be_read():
    frame = json.dumps({"v": VERSION + 1, "kind": "ready", "id": "n0"}).encode()
    with pytest.raises(ProtocolError, match="unsupported protocol version"):
        decode_header(frame)
    assert peek_version(frame) == VERSION + 1
