"""What crosses the sandbox's boundary between the grader and a kernel, and between two kernels of
one worker (``autograder.engine.sandbox``): each test runs real sandboxed kernels, forked from a
zygote as grading forks them, and looks from inside."""

import json
import secrets
from functools import partial

import pytest

from autograder.engine import sandbox
from tests.kernels import Kernel as AnyKernel
from tests.kernels import sandboxed_zygote

#: Kernel code: where the bytes ``HEAD + TAIL`` occur in this process's own memory (every
#: readable range of ``/proc/self/maps``, through ``/proc/self/mem``) and in the environment and
#: command line of every process it can see. The needle is given as two halves, so the cell's
#: own source never holds it whole.
SEARCH_MEMORY = r'''
import json, os, re
head, tail = {head!r}.encode(), {tail!r}.encode()
CHUNK = 64 << 20

def occurs(data):
    start = data.find(head)
    while start != -1:
        if data[start + len(head):start + len(head) + len(tail)] == tail:
            return True
        start = data.find(head, start + 1)
    return False

found = []
with open('/proc/self/mem', 'rb', buffering=0) as memory:
    for line in open('/proc/self/maps').read().splitlines():
        span, perms = line.split()[:2]
        if perms[0] != 'r':
            continue
        begin, end = (int(value, 16) for value in span.split('-'))
        for offset in range(begin, end, CHUNK):
            try:
                memory.seek(offset)
                data = memory.read(min(CHUNK + len(head) + len(tail), end - offset))
            except (OSError, OverflowError, ValueError):
                continue
            if occurs(data):
                found.append(line)
                break
for name in os.listdir('/proc'):
    for part in ('environ', 'cmdline'):
        try:
            data = open(f'/proc/{{name}}/{{part}}', 'rb').read()
        except OSError:
            continue
        if name.isdigit() and occurs(data):
            found.append(f'/proc/{{name}}/{{part}}')
print(json.dumps(found))
'''

#: Kernel code: walk the whole file tree (not /proc and /sys: no files can be made there), and
#: in every folder where a file can be created, create ``MARK``; print ``{folder: size of its
#: filesystem in bytes (statvfs)}`` of the folders written to.
WRITE_EVERYWHERE = r'''
import json, os
pseudo = {{line.split()[4] for line in open('/proc/self/mountinfo')
          if line.split(' - ')[1].split()[0] in ('proc', 'sysfs')}}
written = {{}}
for folder, subfolders, _ in os.walk('/'):
    subfolders[:] = [name for name in subfolders if os.path.join(folder, name) not in pseudo]
    if not os.access(folder, os.W_OK):
        continue
    try:
        open(os.path.join(folder, {mark!r}), 'x').close()
    except OSError:
        continue
    stats = os.statvfs(folder)
    written[folder] = stats.f_blocks * stats.f_frsize
print(json.dumps(written))
'''

FIND_MARKS = r'''
import json, os
print(json.dumps([folder for folder in {folders!r} if os.path.lexists(os.path.join(folder, {mark!r}))]))
'''


def _json(kernel, code):
    """Run ``code`` (which prints one JSON value) in ``kernel`` and return the value."""
    text, error, outputs = kernel.run(code, timeout=300)
    assert error is None, outputs
    return json.loads(text)


def _run_once(Kernel, code):
    kernel = Kernel()
    try:
        return _json(kernel, code)
    finally:
        kernel.close()


def test_no_variable_of_the_graders_environment_is_in_a_kernels_memory(tmp_path, monkeypatch):
    """The secret is set in the grader's environment before the zygote starts and is in the
    launcher's environment (jupyter_client passes it on); no byte of it reaches the kernel:
    not its own memory (the zygote's request and payload, inherited by fork), and not the
    environment or command line of bwrap, the zygote or anything else in the sandbox."""
    head, tail = secrets.token_hex(12), secrets.token_hex(12)
    monkeypatch.setenv("XAI_TEST_GRADER_SECRET", head + tail)
    with sandboxed_zygote(tmp_path) as (_, layout, _code):
        found = _run_once(partial(AnyKernel, layout=layout), SEARCH_MEMORY.format(head=head, tail=tail))
    assert found == []


def test_the_memory_search_finds_what_is_there(tmp_path):
    """The search above is no blind test: a value the kernel holds is found in its memory."""
    head, tail = secrets.token_hex(12), secrets.token_hex(12)
    code = f"held = {head!r} + {tail!r}\n" + SEARCH_MEMORY.format(head=head, tail=tail)
    with sandboxed_zygote(tmp_path) as (_, layout, _code):
        found = _run_once(partial(AnyKernel, layout=layout), code)
    assert found and all(not line.startswith("/proc/") for line in found)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    """``(Kernel, layout)``: kernels of one sandboxed zygote, one after the other as a worker runs them."""
    with sandboxed_zygote(tmp_path_factory.mktemp("zygote")) as (_, layout, _code):
        yield partial(AnyKernel, layout=layout), layout


def test_nothing_written_anywhere_reaches_the_next_kernel_and_every_place_is_capped(zygote):
    Kernel, layout = zygote
    mark = f"left-by-the-previous-kernel-{secrets.token_hex(4)}"
    written = _run_once(Kernel, WRITE_EVERYWHERE.format(mark=mark))
    assert {"/tmp", "/dev/shm", sandbox.HOME} <= set(written), written  # the walk reaches them
    assert layout.handoff in written  # the kernels' ZMQ sockets: writable, and private and capped too
    too_large = {folder: size for folder, size in written.items()
                 if size > max(sandbox.private_folders(layout).values())}
    assert too_large == {}
    left = _run_once(Kernel, FIND_MARKS.format(folders=sorted(written), mark=mark))
    assert left == []


#: Kernel code: leave a System V shared memory segment and a POSIX message queue behind.
LEAVE_IPC_OBJECTS = r'''
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
segment = libc.shmget(0x5ca1ab1e, 4096, 0o1600)  # IPC_CREAT | 0600
queue = os.open('/dev/mqueue/left-behind', os.O_CREAT | os.O_WRONLY, 0o600)
print(json.dumps([segment, queue]))
'''
SEE_IPC_OBJECTS = r'''
import json, os
print(json.dumps([open('/proc/sysvipc/shm').read().splitlines()[1:], os.listdir('/dev/mqueue')]))
'''


def test_ipc_objects_do_not_reach_the_next_kernel(zygote):
    Kernel, _ = zygote
    segment, queue = _run_once(Kernel, LEAVE_IPC_OBJECTS)
    assert segment >= 0 and queue >= 0
    assert _run_once(Kernel, SEE_IPC_OBJECTS) == [[], []]
