"""Big JSON bodies are parsed element by element (gateway/snapshot/load.py): same result as orjson, same
error messages, and another thread gets the interpreter while a big document is being parsed."""

from __future__ import annotations

import json
import sys
import threading

import orjson
import pytest

from gateway.core.errors import SnapshotError
from gateway.snapshot.load import (
    SLICED_JSON_BYTES,
    canonical,
    canonical_parts,
    dumps_sliced,
    loads_json,
    loads_sliced,
    parse_bytes,
)
from tests.support.bigdoc import big_document


def test_same_document_as_orjson_whatever_the_formatting() -> None:
    doc = big_document(1500)
    doc["apis"][3]["name"] = "unicodé ✓ \"quoted\" \\ back"
    doc["apis"][4]["remark"] = "😀"
    doc["empty"] = []
    doc["scalar"] = {"x": [1.5, -2, 1e3, True, None]}
    for raw in (orjson.dumps(doc), json.dumps(doc, indent=2).encode(),
                json.dumps(doc, separators=(" , ", " : ")).encode(), b"\n " + orjson.dumps(doc) + b" \n"):
        assert len(raw) > SLICED_JSON_BYTES
        assert loads_sliced(raw) == orjson.loads(raw) == doc
        assert parse_bytes(raw) == doc


@pytest.mark.parametrize("text", [
    b'{"a": [1, 2,]}', b'{"a": [1 2]}', b'{"a": 1,}', b'{"a": [1, 2]', b'{"a" 1}', b'{"a": NaN}',
    b'{"a": 1e400}', b'{"a": "\\ud800"}', b'{"a": 1} x', b'{"a": [01]}', b'{"a": "\x01"}',
])
def test_invalid_big_bodies_are_reported_with_orjsons_message(text: bytes) -> None:
    big = text + b" " * SLICED_JSON_BYTES
    with pytest.raises(orjson.JSONDecodeError) as want:
        orjson.loads(big)
    with pytest.raises(SnapshotError) as got:
        parse_bytes(big)
    assert got.value.problems == [f"body: invalid JSON: {want.value}"]


@pytest.mark.parametrize("text", [
    b'{"a": 123456789012345678901234, "b": -9223372036854775809, "c": 18446744073709551615}',
    b'{"a": "\\ud83d\\ude00", "b": [1]}', b'[1, 2, {"a": []}]', b'{}', b'{"a": [ ]}', b'"x"',
])
def test_edge_values_as_orjson(text: bytes) -> None:
    big = text + b" " * SLICED_JSON_BYTES
    assert loads_json(big) == orjson.loads(big)


def test_another_thread_runs_while_a_big_document_is_parsed() -> None:
    raw = orjson.dumps(big_document(20000))
    done = threading.Event()
    result: list[object] = []

    def parse() -> None:
        result.append(loads_json(raw))
        done.set()

    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        worker = threading.Thread(target=parse)
        ticks = 0
        worker.start()
        while not done.is_set():  # each tick needs the interpreter back from the parsing thread
            ticks += 1
            done.wait(0.0001)
        worker.join()
    finally:
        sys.setswitchinterval(saved)
    assert result[0] == orjson.loads(raw)
    assert ticks >= 5, ticks


def test_sliced_writers_give_the_same_bytes_and_documents() -> None:
    doc = big_document(2000)
    doc["version"] = "v7"
    doc["zz"] = {2: "non-string key", "a": [1, 2]}
    doc["empty"] = []
    assert b"".join(canonical_parts(doc)) == canonical(doc)  # snapshot ids and digests unchanged
    record = {"id": "s1", "version": "v7", "origin": "", "stored_at": 1.5, "doc": doc}
    raw = dumps_sliced(record)
    assert orjson.loads(raw) == orjson.loads(orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS))
    assert loads_sliced(raw) == orjson.loads(raw)  # the nested document is parsed in pieces too
    assert orjson.loads(dumps_sliced({"doc": {}})) == {"doc": {}}


def test_batches_cut_inside_elements_fall_back_exactly() -> None:
    doc = big_document(3000)
    for k in range(0, 3000, 3):  # nested objects that start like the elements: some batch cuts fall inside them
        doc["apis"][k]["req_params"] = [{"id": "x", "name": "q", "location": "QUERY"}, {"id": "y", "name": "r"}]
    doc["plain"] = list(range(50000))  # not objects: element by element
    for raw in (orjson.dumps(doc), json.dumps(doc, ensure_ascii=False, indent=1).encode()):
        assert loads_sliced(raw) == doc


def test_elements_share_their_key_strings() -> None:
    parsed = loads_sliced(orjson.dumps(big_document(10000)))
    first = {id(next(iter(api))) for api in parsed["apis"]}
    # one "id" string per batch of ~64 KB (~180 APIs), and per API only in the array's last stretch
    assert len(first) < len(parsed["apis"]) / 10, len(first)
