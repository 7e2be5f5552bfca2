"""The check server is bound to its notebook and bounded in what a kernel can make it do
(``autograder/engine/check_server.py``; the kernel's side runs in this process).

- (a) a verdict belongs to the notebook that produced it: a connection of an earlier notebook,
  kept busy past its end, changes no later notebook's result, and a request carrying an earlier
  notebook's token is refused;
- (b) the check connections still open when a notebook ends are closed;
- (c) a frame's length is checked before anything is allocated: a header over the limit is
  refused with a clear message, and idle connections that sent only a header cost no memory;
- (d) the work one message and one notebook can cause (models rebuilt, tensor elements decoded,
  compressed records, hooks mirrored) is bounded, with a message that says which limit.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import socket
import struct
import threading
import zipfile

import pytest
import torch
from torch import nn

from autograder.engine import check_server
from student_src import grading_client
from tests.test_alternatives import reference_function

CHECK = "a01_hooks.check_top_channels"


@pytest.fixture()
def server():
    running = check_server.ensure_running()
    running.begin_notebook()
    yield running
    running.end_notebook()


def _run_top_channels(function) -> str:
    """Run ``CHECK`` on ``function`` as a hidden test cell would; "" when it passed, else the message."""
    try:
        grading_client.run("a01_hooks", "check_top_channels", function)
    except grading_client.HiddenCheckFailed as error:
        return str(error)
    return ""


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _connect(server) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(server.address)
    connection.settimeout(60)
    return connection


# --- (a) verdicts bound to their notebook -----------------------------------------------------


def test_a_busy_connection_of_an_earlier_notebook_changes_no_later_verdict(server):
    entered, release = threading.Event(), threading.Event()

    def top_channels_busy_then_wrong(model, layer_name, x, k=5):
        entered.set()
        release.wait(60)
        raise ValueError("fails late, in the next notebook")

    server.cell_started(3)
    def earlier_notebook_cell():
        with contextlib.suppress(OSError, grading_client.ProtocolError):  # its connection was closed
            _run_top_channels(top_channels_busy_then_wrong)

    earlier = threading.Thread(target=earlier_notebook_cell, daemon=True)
    earlier.start()
    assert entered.wait(60)
    server.end_notebook()
    server.begin_notebook()
    server.cell_started(3)
    assert _run_top_channels(reference_function("top_channels")) == ""
    release.set()
    earlier.join(60)
    assert not earlier.is_alive()
    assert server.passed_in(3) == {CHECK}


def test_a_request_with_an_earlier_notebooks_token_is_refused(server, monkeypatch):
    earlier_token = os.environ[check_server.TOKEN_ENV]
    server.end_notebook()
    server.begin_notebook()
    server.cell_started(1)
    monkeypatch.setenv(check_server.TOKEN_ENV, earlier_token)
    message = _run_top_channels(reference_function("top_channels"))
    assert "does not belong to the notebook being graded" in message
    assert server.passed_in(1) == set()


# --- (b) connections closed at the notebook's end ---------------------------------------------


def _accepted(server, count: int) -> None:
    """Wait until the server has accepted ``count`` connections (connect returns before that)."""
    done = threading.Event()
    while len(server.connections) < count:
        done.wait(0.05)


def test_open_check_connections_are_closed_when_the_notebook_ends(server):
    idle, header_only = _connect(server), _connect(server)
    header_only.sendall(struct.pack(">Q", 1000))
    try:
        _accepted(server, 2)
        server.end_notebook()
        for connection in (idle, header_only):
            assert connection.recv(1 << 16) == b""  # closed by the server (a timeout otherwise)
    finally:
        idle.close()
        header_only.close()


# --- (c) frame sizes checked before allocating ------------------------------------------------


def test_a_header_over_the_limit_is_refused_with_a_clear_message(server):
    with _connect(server) as connection:
        connection.sendall(struct.pack(">Q", grading_client.MAX_FRAME_BYTES + 1))
        verdict = grading_client.receive_frame(connection, from_trusted_side=True)
    assert verdict["passed"] is False
    assert "over the limit" in verdict["message"]


def test_idle_connections_that_sent_only_a_header_cost_no_memory(server):
    """Three headers announcing the largest message allowed, then nothing (before the change the
    server allocated and zeroed 512 MiB for each at once)."""
    before = _resident_bytes()
    connections = [_connect(server) for _ in range(3)]
    try:
        for connection in connections:
            connection.sendall(struct.pack(">Q", grading_client.MAX_FRAME_BYTES))
        # A check request of this notebook, answered after the three: the server is past their headers.
        assert _run_top_channels(reference_function("top_channels")) == ""
        assert _resident_bytes() - before < 256 << 20
    finally:
        for connection in connections:
            connection.close()


# --- (d) the work a message and a notebook can cause ------------------------------------------


def _copies_returned(count: int):
    def top_channels_returning_models(model, layer_name, x, k=5):
        return [copy.deepcopy(model) for _ in range(count)]
    return top_channels_returning_models


def test_one_message_rebuilding_too_many_models_fails_with_the_limit_named(server, monkeypatch):
    monkeypatch.setitem(check_server.WORK_LIMITS, "models rebuilt", (1, 10))
    server.begin_notebook()  # its budget has the limits above
    message = _run_top_channels(_copies_returned(2))
    assert "2 models rebuilt (at most 1 per message)" in message


def test_a_notebook_rebuilding_too_many_models_in_all_fails_with_the_limit_named(server, monkeypatch):
    monkeypatch.setitem(check_server.WORK_LIMITS, "models rebuilt", (1, 2))
    server.begin_notebook()
    messages = [_run_top_channels(_copies_returned(1)) for _ in range(3)]
    assert "models rebuilt" not in messages[0] + messages[1]
    assert "3 models rebuilt in all (at most 2 per notebook)" in messages[2]
    server.begin_notebook()  # the next notebook has its own budget
    assert _run_top_channels(reference_function("top_channels")) == ""


def _raw_verdict(server, payload: bytes) -> dict:
    with _connect(server) as connection:
        connection.sendall(struct.pack(">Q", len(payload)) + payload)
        return grading_client.receive_frame(connection, from_trusted_side=True)


def _request(**extra) -> dict:
    return {"op": "run", "module": "a01_hooks", "check": "check_top_channels", "functions": [],
            "token": os.environ[check_server.TOKEN_ENV], **extra}


def test_an_expanded_tensor_claiming_a_trillion_elements_is_refused_before_use(server):
    saved = io.BytesIO()
    torch.save(_request(padding=torch.zeros(1).expand(10**6, 10**6)), saved)
    assert len(saved.getvalue()) < 1 << 16
    verdict = _raw_verdict(server, saved.getvalue())
    assert verdict["passed"] is False
    assert "tensor elements decoded" in verdict["message"]


def _compressed(message) -> bytes:
    """``message`` as torch.save writes it, with every record deflated (a kilobyte can unpack to gigabytes)."""
    saved = io.BytesIO()
    torch.save(message, saved)
    packed = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(saved.getvalue())) as source, \
            zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    return packed.getvalue()


def test_a_message_with_compressed_records_is_refused(server):
    payload = _compressed(_request(padding=torch.zeros(1 << 20)))
    assert len(payload) < 1 << 16
    verdict = _raw_verdict(server, payload)
    assert verdict["passed"] is False
    assert "compressed" in verdict["message"]


def test_hooks_reported_by_the_kernel_are_mirrored_up_to_a_bound():
    module = nn.Linear(2, 2)
    check_server._mirror_hooks(module, [10**9, 0, 0, 0])
    assert len(module._forward_hooks) == check_server.MAX_MIRRORED_HOOKS
