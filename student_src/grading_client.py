"""The kernel's side of the hidden checks: the grader calls your functions from outside.

During grading, a hidden test cell imports this module and calls :func:`run` with the name of a
check of the grader's and your function. The check does not run in this kernel. The grader's trusted process (outside the sandbox your
notebook runs in) builds the inputs, asks this client to call your function on them, compares
what comes back with its reference, and records the verdict itself. This module only:

1. connects to the grader (the Unix socket named by ``XAI_CHECK_SOCKET``) and says which
   check to run and which functions to run it on (name, kind);
2. calls a function when asked, on the models, tensors and arguments the grader sent;
3. sends back the result as plain data (tensors, numbers, strings, lists, tuples, dicts) and
   what the call did to the models and tensors it was given (mode, parameters, hooks, modules
   replaced), so that the grader can check side effects;
4. raises :class:`HiddenCheckFailed` with the grader's message when the check failed.

The grader reads this side's messages with ``torch.load(weights_only=True)``: containers,
numbers, strings and tensors only, never an unpickled object. This side loads the grader's
messages in full (they carry the models to call your function on). A frame is an 8-byte
big-endian length, then ``torch.save`` bytes.

Without a grader to talk to (``XAI_CHECK_SOCKET`` unset) :func:`run` fails at once: hidden
checks run only where the instructor's tools run the notebook (``grade``, ``validate``,
``figures`` start the server first).
"""

from __future__ import annotations

import builtins
import io
import os
import socket
import struct
from contextlib import ExitStack

import numpy as np
import torch
from torch import nn

SOCKET_ENV = "XAI_CHECK_SOCKET"
#: The graded notebook's session token (the grader sets a new one per notebook): a check request
#: carries it, and the grader runs only requests of the notebook being graded.
TOKEN_ENV = "XAI_CHECK_TOKEN"
#: Largest message either side accepts (a CIFAR ResNet-18 with its state is about 45 MB).
MAX_FRAME_BYTES = 512 * 2**20
#: Bytes read from the socket at a time: a message's memory grows with what has arrived, so a
#: length announced and never sent costs nothing.
READ_CHUNK_BYTES = 1 << 20
MAX_DEPTH = 32
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


class HiddenCheckFailed(AssertionError):
    """A hidden check failed; the message says what is wrong, never the expected values."""


class ProtocolError(RuntimeError):
    """The other side sent something that is not a message of this protocol, or went away."""


# ---------------------------------------------------------------------------------------------
# Frames


def send_frame(connection: socket.socket, message) -> None:
    buffer = io.BytesIO()
    torch.save(message, buffer)
    data = buffer.getbuffer()  # no copy of a model's 45 MB
    connection.sendall(struct.pack(">Q", len(data)))
    connection.sendall(data)


def _read_exactly(connection: socket.socket, size: int) -> bytearray:
    """``size`` bytes, read as they arrive (never allocated ahead of them)."""
    data = bytearray()
    while len(data) < size:
        received = connection.recv(min(size - len(data), READ_CHUNK_BYTES))
        if not received:
            raise ProtocolError("the connection closed in the middle of a message")
        data += received
    return data


def receive_bytes(connection: socket.socket, limit: int = MAX_FRAME_BYTES) -> bytearray:
    """One frame's bytes; a length over ``limit`` is refused before anything else is read."""
    (size,) = struct.unpack(">Q", _read_exactly(connection, 8))
    if size > limit:
        raise ProtocolError(f"a message of {size} bytes is over the limit of {limit}")
    return _read_exactly(connection, size)


def load_frame(stream: io.BytesIO, from_trusted_side: bool):
    """The message in ``stream`` (a frame's bytes, from the start). ``from_trusted_side=False`` (the
    grader reading a kernel's message) loads with ``weights_only=True``: plain containers and
    tensors, nothing else is unpickled."""
    try:
        return torch.load(stream, weights_only=not from_trusted_side, map_location="cpu")
    except Exception as error:  # noqa: BLE001 (anything unreadable is a protocol error)
        raise ProtocolError(f"unreadable message ({type(error).__name__}: {str(error)[:200]})") from None


def receive_frame(connection: socket.socket, from_trusted_side: bool):
    """One message (:func:`receive_bytes`, then :func:`load_frame`)."""
    return load_frame(io.BytesIO(receive_bytes(connection)), from_trusted_side)


# ---------------------------------------------------------------------------------------------
# What the grader sends (pickled; this module defines the classes so that the kernel can load them)


class SentModule:
    """A model the grader sends: ``module`` the first time (``None`` afterwards: use the copy
    the kernel already has), with ``state`` and ``training`` to bring that copy up to date."""

    def __init__(self, ref: int, module: nn.Module | None, state: dict | None = None, training: list | None = None):
        self.ref, self.module, self.state, self.training = ref, module, state, training


class SentTensor:
    """A tensor argument; the kernel reports changes made to it in place, and its ``.grad``."""

    def __init__(self, ref: int, tensor: torch.Tensor):
        self.ref, self.tensor = ref, tensor


class KernelFunction:
    """One of the functions the check runs on (``functions[index]``, then ``attribute``)."""

    def __init__(self, index: int, attribute: str | None = None):
        self.index, self.attribute = index, attribute


class Callback:
    """A function of the grader's (a recording ``cam_fn``, a reference helper): calling it in the
    kernel sends the arguments to the grader, which runs it and sends the result back."""

    def __init__(self, ident: int, name: str = "callback"):
        self.ident, self.name = ident, name


class Call:
    """Call ``target`` with ``args``/``kwargs``; ``operation`` names a built-in instead (see
    :data:`OPERATIONS`); ``replaced_globals`` maps names in the function's globals to callbacks
    for the duration of the call (``student_src.checks.globals_replaced``); ``grad_enabled``: the
    caller's grad mode, which the call runs under."""

    def __init__(self, target: KernelFunction | None, args: tuple, kwargs: dict, operation: str | None = None,
                 replaced_globals: dict | None = None, grad_enabled: bool = True):
        self.target, self.args, self.kwargs = target, args, kwargs
        self.operation, self.replaced_globals = operation, replaced_globals or {}
        self.grad_enabled = grad_enabled  # the caller's torch.is_grad_enabled(): a call inside no_grad stays so


# ---------------------------------------------------------------------------------------------
# Plain data: what the kernel sends


def module_structure(module: nn.Module) -> list:
    """``[(name, class name, ((parameter name, shape), ...)), ...]``: how two models are matched."""
    return [(name, type(child).__name__,
             tuple((p_name, tuple(p.shape)) for p_name, p in child.named_parameters(recurse=False)))
            for name, child in module.named_modules()]


#: Elements of a tensor summed for its mark: all of a small one, an even sample of a large one.
MARK_SAMPLES = 4096


def _fingerprint(tensor: torch.Tensor) -> float:
    flat = tensor.reshape(-1)
    if flat.numel() > MARK_SAMPLES:
        flat = flat[::flat.numel() // MARK_SAMPLES]
    return float(flat.sum(dtype=torch.float64)) if flat.is_floating_point() else float(flat.sum())


def state_marks(module: nn.Module) -> dict:
    """``{state name: mark}``: what tells, without a copy, whether a parameter or buffer changed
    since: its object, version counter (bumped by every in-place operation), storage and shape,
    and a sum over a sample of its values (``.data.normal_()`` bumps no version counter)."""
    marks = {}
    for name, value in module.state_dict(keep_vars=True).items():
        tensor = value.detach()
        marks[name] = (id(value), value._version, tensor.data_ptr(), tuple(tensor.shape), _fingerprint(tensor))
    return marks


def changed_state(module: nn.Module, marks: dict) -> tuple[dict, dict]:
    """The parameters and buffers whose mark differs from ``marks`` (copies), and the new marks."""
    now = state_marks(module)
    state = module.state_dict()
    return {name: state[name].detach().clone() for name, mark in now.items() if marks.get(name) != mark}, now


def _hook_counts(module: nn.Module) -> list:
    return [len(getattr(module, name, None) or {}) for name in HOOK_DICTS]


def to_plain(value, encode_module, depth: int = 0):
    """``value`` as containers, numbers, strings and tensors, with tagged dicts for the rest:
    ``{"__tensor__": t, "requires_grad", "grad_fn"}``, ``{"__numpy__": t}``, ``{"__dict__": [(k, v)]}``,
    ``{"__module__": ...}`` (from ``encode_module``), ``{"__object__": type name, "repr": ...}``."""
    if depth > MAX_DEPTH:
        return {"__object__": "too deeply nested", "repr": ""}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").clone()
        if value.requires_grad or value.grad_fn is not None:
            return {"__tensor__": tensor, "requires_grad": bool(value.requires_grad),
                    "grad_fn": value.grad_fn is not None}
        return tensor
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {"__numpy__": torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, np.generic):
        return {"__numpy_scalar__": value.item(), "dtype": str(value.dtype)}
    if isinstance(value, nn.Module):
        return {"__module__": encode_module(value)}
    if isinstance(value, torch.Size):
        return {"__size__": [int(v) for v in value]}
    if isinstance(value, (list, tuple)):
        items = [to_plain(item, encode_module, depth + 1) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {"__dict__": [(to_plain(k, encode_module, depth + 1), to_plain(v, encode_module, depth + 1))
                             for k, v in value.items()]}
    return {"__object__": f"{type(value).__module__}.{type(value).__qualname__}", "repr": repr(value)[:200]}


# ---------------------------------------------------------------------------------------------
# Kernel side


def describe(function) -> dict:
    return {"name": getattr(function, "__name__", type(function).__name__),
            "kind": "class" if isinstance(function, type) else "function",
            "autograd_function": isinstance(function, type) and issubclass(function, torch.autograd.Function)}


def _forward_and_gradient(function, x: torch.Tensor, incoming: torch.Tensor):
    """Built-in: ``output = function(leaf)`` and ``d(output)/d(leaf)`` for ``incoming``, where leaf
    is a copy of ``x`` that requires grad; also ``leaf`` and ``incoming`` after the call (to see
    changes in place). Autograd cannot cross processes, so the grader asks for this."""
    leaf = x.clone().requires_grad_(True)
    output = function(leaf)
    given = incoming.clone()
    (gradient,) = torch.autograd.grad(output, leaf, given)
    return output.detach(), gradient, given, leaf.detach()


def _plain_input_gradient(model: nn.Module, x: torch.Tensor):
    """Built-in: ``d sum_b logits[b, argmax_b] / d x`` with the model as the kernel has it now
    (after a student's call: leftover hooks or patched modules show in this gradient)."""
    leaf = x.detach().clone().requires_grad_(True)
    logits = model(leaf)
    score = logits.gather(1, logits.argmax(dim=1, keepdim=True)).sum()
    (gradient,) = torch.autograd.grad(score, leaf)
    return gradient


OPERATIONS = {"forward_and_gradient": _forward_and_gradient, "plain_input_gradient": _plain_input_gradient}


def _exception_for(name: str, message: str) -> Exception:
    """An exception of the builtin class ``name`` (an ``Exception`` subclass), else RuntimeError."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        return kind(message)
    return RuntimeError(f"{name}: {message}")


class _KernelSession:
    """One :func:`run`: the connection, the functions, and the models and tensors received."""

    def __init__(self, connection: socket.socket, functions: tuple):
        self.connection, self.functions = connection, functions
        self.modules: dict[int, nn.Module] = {}          # ref -> the kernel's copy
        self.originals: dict[int, dict] = {}             # ref -> {name: module object} as received
        self.marks: dict[int, dict] = {}                 # ref -> state marks when last reported
        self.new_refs = iter(range(-1, -10**9, -1))      # refs of models the kernel itself made
        self.in_play: set = set()                        # refs of the running call's models and tensors
        self.tensors: dict[int, tuple] = {}              # ref -> (tensor, value as received)

    # -- receiving
    def _module(self, sent: SentModule) -> nn.Module:
        if sent.module is not None:
            self.modules[sent.ref] = sent.module
            self.originals[sent.ref] = dict(sent.module.named_modules())
        module = self.modules[sent.ref]
        self.in_play.add(sent.ref)
        if sent.state is not None:
            with torch.no_grad():
                for name, value in module.state_dict(keep_vars=True).items():
                    if name in sent.state:
                        value.copy_(sent.state[name])
        if sent.training is not None:
            for child, flag in zip(module.modules(), sent.training):
                child.training = flag
        self.marks[sent.ref] = state_marks(module)
        return module

    def _callback(self, callback: Callback):
        def call_grader(*args, **kwargs):
            reply = self.request({"op": "callback", "id": callback.ident, "args": self.plain(args),
                                  "kwargs": self.plain(kwargs), "effects": self.effects(),
                                  "grad_enabled": torch.is_grad_enabled()})
            return reply

        call_grader.__name__ = callback.name
        return call_grader

    def resolve(self, value, depth: int = 0):
        if depth > MAX_DEPTH:
            raise ProtocolError("arguments nested too deeply")
        if isinstance(value, SentModule):
            return self._module(value)
        if isinstance(value, SentTensor):
            tensor = value.tensor
            self.tensors[value.ref] = (tensor, tensor.detach().clone())
            self.in_play.add(value.ref)
            return tensor
        if isinstance(value, KernelFunction):
            target = self.functions[value.index]
            for part in (value.attribute or "").split(".") if value.attribute else ():
                target = getattr(target, part)
            return target
        if isinstance(value, Callback):
            return self._callback(value)
        if isinstance(value, (list, tuple)):
            items = [self.resolve(item, depth + 1) for item in value]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict):
            return {key: self.resolve(item, depth + 1) for key, item in value.items()}
        return value

    # -- sending
    def _encode_module(self, module: nn.Module) -> dict:
        """A model the grader knows by its ref (its changes travel in the side effects); one the
        kernel made (a deep copy) in full, the first time, under a new ref of its own."""
        for ref, known in self.modules.items():
            if known is module:
                return {"ref": ref}
        ref = next(self.new_refs)
        self.modules[ref], self.originals[ref], self.marks[ref] = module, dict(module.named_modules()), state_marks(module)
        self.in_play.add(ref)
        return {"ref": None, "new_ref": ref, "structure": module_structure(module), "state": dict(module.state_dict()),
                "training": [child.training for child in module.modules()]}

    def plain(self, value):
        return to_plain(value, self._encode_module)

    def effects(self) -> dict:
        """What happened to the models and tensors of the running call (changed state only): a
        call can change only what it was given or made."""
        models = {}
        for ref, module in self.modules.items():
            if ref not in self.in_play:
                continue
            now = dict(module.named_modules())
            original = self.originals[ref]
            changed, self.marks[ref] = changed_state(module, self.marks[ref])
            models[ref] = {
                "names": list(now),
                "replaced": sorted(name for name, child in original.items() if now.get(name) is not child),
                "types": {name: type(child).__name__ for name, child in now.items()},
                "training": {name: child.training for name, child in now.items()},
                "inplace": {name: child.inplace for name, child in now.items() if isinstance(getattr(child, "inplace", None), bool)},
                "hooks": {name: _hook_counts(child) for name, child in now.items()},
                "changed_state": changed,
                "grads": {name: p.grad.detach().clone() for name, p in module.named_parameters() if p.grad is not None},
                "requires_grad": {name: bool(p.requires_grad) for name, p in module.named_parameters()},
            }
        tensors = {}
        for ref, (tensor, received) in self.tensors.items():
            if ref not in self.in_play:
                continue
            unchanged = tensor.shape == received.shape and torch.equal(tensor.detach(), received)
            tensors[ref] = {"value": None if unchanged else tensor.detach().clone(),
                            "grad": None if tensor.grad is None else tensor.grad.detach().clone()}
        return {"models": models, "tensors": tensors}

    # -- the conversation
    def request(self, message):
        """Send ``message``; serve the grader's calls until its answer comes; return the answer."""
        send_frame(self.connection, message)
        while True:
            reply = receive_frame(self.connection, from_trusted_side=True)
            if isinstance(reply, Call):
                send_frame(self.connection, self.execute(reply))
            elif isinstance(reply, dict) and reply.get("op") == "return":
                return reply.get("value")
            elif isinstance(reply, dict) and reply.get("op") == "raised":
                raise _exception_for(reply.get("type", "RuntimeError"), reply.get("message", ""))
            elif isinstance(reply, dict) and reply.get("op") == "verdict":
                return reply
            else:
                raise ProtocolError("unexpected message from the grader")

    def execute(self, call: Call) -> dict:
        """Run one call; the answer carries the result (or the exception) and the side effects."""
        outer, self.in_play = self.in_play, set()  # a call from inside a callback has its own
        try:
            return self._execute(call)
        finally:
            self.in_play = outer | self.in_play

    def _execute(self, call: Call) -> dict:
        try:
            args, kwargs = self.resolve(call.args), self.resolve(call.kwargs)
            function = OPERATIONS[call.operation] if call.operation is not None else self.resolve(call.target)
            with ExitStack() as stack:
                stack.enter_context(torch.set_grad_enabled(bool(call.grad_enabled)))
                if call.replaced_globals:
                    from student_src.checks import globals_replaced

                    target = self.resolve(call.target)
                    replacements = {name: self.resolve(value) for name, value in call.replaced_globals.items()}
                    stack.enter_context(globals_replaced(target, **replacements))
                result = function(*args, **kwargs)
            return {"op": "return", "value": self.plain(result), "effects": self.effects()}
        except Exception as error:  # noqa: BLE001 (the student's exception is the answer)
            return {"op": "raised", "type": type(error).__name__, "message": str(error)[:2000],
                    "effects": self.effects()}


def run(module: str, check: str, *functions) -> None:
    """Have the grader run hidden check ``check`` of ``autograder/engine/checks/<module>.py`` on
    ``functions``; return when it passed, raise :class:`HiddenCheckFailed` when it did not."""
    address = os.environ.get(SOCKET_ENV)
    if not address:
        raise HiddenCheckFailed("hidden checks run only when the instructor's grader runs this notebook")
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(address)
        session = _KernelSession(connection, functions)
        verdict = session.request({"op": "run", "module": module, "check": check,
                                   "token": os.environ.get(TOKEN_ENV, ""),
                                   "functions": [describe(function) for function in functions]})
    finally:
        connection.close()
    if not (isinstance(verdict, dict) and verdict.get("op") == "verdict"):
        raise HiddenCheckFailed("the grader did not answer")
    if not verdict.get("passed"):
        raise HiddenCheckFailed(str(verdict.get("message", "hidden check failed")))
