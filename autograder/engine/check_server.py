"""The trusted side of the hidden checks: they run here, the student's functions run in the kernel.

A hidden test cell calls ``student_src.grading_client.run(module, check, *functions)`` in the
notebook's kernel (inside the sandbox). That connects to this server, which lives in the process
that runs nbgrader (outside the sandbox) and:

1. accepts only a real check: a ``check_*`` function of a module of ``autograder/engine/checks``;
2. runs the check *here*, handing it one :class:`RemoteFunction` per student function. Calling
   one sends the arguments (models, tensors, callbacks) to the kernel, which calls the student's
   function and sends back the result as plain data, read with ``torch.load(weights_only=True)``;
   what the call did to the models and tensors it was given is mirrored onto the objects here
   (mode, parameters and gradients, hooks, modules replaced), so a check reads side effects as
   it always did; the call runs under the check's grad mode (a check may call inside
   ``torch.no_grad()``). Functions the check passes *to* the student's code (a recording ``cam_fn``,
   a reference helper) stay here: the kernel calls back;
   the expected values never come from those mirrored objects: :class:`PristineCopies` keeps each
   model and tensor as the grader handed it to the kernel, and a check computes its reference
   through ``checks.common.on_pristine``, which gives the reference fresh copies of those;
3. records the verdict under the cell that is running (:meth:`CheckServer.cell_started`, told
   by the Execute preprocessor), and tells the kernel pass or fail, with the check's message.

It is bound to the notebook being graded and bounded in what a kernel can make it do:

- :meth:`CheckServer.begin_notebook` gives each notebook a new random token, put in the
  environment its kernels are started with; a request without it is refused, and a verdict is
  recorded only if its notebook is still the one being graded: a connection of an earlier
  notebook (kept busy past its end) changes no later notebook's result.
  :meth:`CheckServer.end_notebook` closes every check connection still open;
- a kernel's message is read as it arrives (a length announced and never sent costs nothing) and
  is refused, before it is unpickled, when it is over the frame limit, not a plain archive of
  stored records, or its pickle is large (:func:`receive_message`);
- the work the kernel's answers cause here (bytes read, tensor elements decoded, models rebuilt
  from a kernel's copy, grader callbacks run) is counted per answer and per notebook against
  :data:`WORK_LIMITS` (:class:`WorkBudget`); past a limit the check fails with a message that
  says which, and every later call of that check fails the same way.

The reference solutions, the checks, the expected values: none of it leaves this process. What a
kernel can still do is lie about what it reports (the side effects of its own function): that can
only win it the points of its own side-effect checks, never make a wrong output pass a
comparison, and never reach another notebook's verdicts.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import copy
import hmac
import importlib
import io
import itertools
import os
import pkgutil
import secrets
import socket
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from student_src import grading_client as wire

SOCKET_ENV = wire.SOCKET_ENV
TOKEN_ENV = wire.TOKEN_ENV
#: What a kernel's messages may make this process do: ``{work: (per answer, per notebook)}``. An
#: answer is one message of the kernel (a request, a function's result, a callback request).
#: The references through the server (tests/test_check_server.py) use at most, per check: 45 MB and
#: 11M elements in one message, 162 MB, 40M elements, 15 callbacks and 2 models rebuilt in all.
WORK_LIMITS = {
    "bytes received": (wire.MAX_FRAME_BYTES, 16 << 30),
    "pickle bytes": (4 << 20, 1 << 30),
    "tensor elements decoded": (1 << 27, 1 << 32),
    "models rebuilt": (4, 256),
    "grader callbacks run": (1, 5_000),
}
#: Hooks mirrored per module and kind at most (a model with more is as wrong as one with this many).
MAX_MIRRORED_HOOKS = 64
#: Check connections one notebook may hold open at once (an honest one uses one at a time).
MAX_OPEN_CONNECTIONS = 8
STALE_MESSAGE = "hidden check refused: this connection does not belong to the notebook being graded"


class WorkLimitExceeded(Exception):
    """The kernel's messages asked this process for more work than :data:`WORK_LIMITS` allow."""


class WorkBudget:
    """The work one notebook's kernels have made this process do, in all; :meth:`answer` counts
    one message's share of it."""

    def __init__(self, limits: dict | None = None):
        self.limits = dict(WORK_LIMITS if limits is None else limits)
        self.spent = dict.fromkeys(self.limits, 0)
        self.lock = threading.Lock()

    def answer(self) -> "AnswerBudget":
        return AnswerBudget(self)


class AnswerBudget:
    """One message's work: :meth:`spend` raises :class:`WorkLimitExceeded` past either limit."""

    def __init__(self, notebook: WorkBudget):
        self.notebook = notebook
        self.spent = dict.fromkeys(notebook.limits, 0)

    def spend(self, work: str, amount: int = 1) -> None:
        per_answer, per_notebook = self.notebook.limits[work]
        self.spent[work] += amount
        if self.spent[work] > per_answer:
            raise WorkLimitExceeded(f"one message of your notebook asked the grader for {self.spent[work]} {work} "
                                    f"(at most {per_answer} per message)")
        with self.notebook.lock:
            self.notebook.spent[work] += amount
            total = self.notebook.spent[work]
        if total > per_notebook:
            raise WorkLimitExceeded(f"your notebook's hidden checks asked the grader for {total} {work} in all "
                                    f"(at most {per_notebook} per notebook)")


def receive_message(connection: socket.socket, budget: AnswerBudget):
    """One message of a kernel, as plain data, counted against ``budget`` before it is unpickled:
    the frame's size, its archive (records stored as they are: a compressed record could unpack to
    any size) and its pickle; then the elements of the tensors it holds (an expanded tensor of a
    few bytes can claim a trillion)."""
    data = wire.receive_bytes(connection)
    budget.spend("bytes received", len(data))
    stream = io.BytesIO(data)  # one copy of the frame, read by zipfile, then by torch.load
    try:
        records = zipfile.ZipFile(stream).infolist()
    except (zipfile.BadZipFile, ValueError) as error:
        raise wire.ProtocolError(f"a message that is not a torch.save archive ({error})") from None
    if any(record.compress_type != zipfile.ZIP_STORED for record in records):
        raise wire.ProtocolError("a message with compressed records")
    if sum(record.file_size for record in records) > len(data):
        raise wire.ProtocolError("a message whose records claim more bytes than it has")
    budget.spend("pickle bytes", sum(record.file_size for record in records if record.filename.endswith(".pkl")))
    stream.seek(0)
    message = wire.load_frame(stream, from_trusted_side=False)
    budget.spend("tensor elements decoded", _tensor_elements(message))
    return message


def _tensor_elements(value, depth: int = 0) -> int:
    """How many elements the tensors in a loaded message claim (views counted each)."""
    if depth > 2 * wire.MAX_DEPTH:
        raise wire.ProtocolError("a message nested too deeply")
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, dict):
        return sum(_tensor_elements(key, depth + 1) + _tensor_elements(item, depth + 1) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_elements(item, depth + 1) for item in value)
    return 0


class Opaque:
    """A value the kernel could only describe (its type and repr): it compares equal to nothing."""

    def __init__(self, kind: str, text: str):
        self.kind, self.text = kind, text

    def __repr__(self) -> str:
        return f"<{self.kind}: {self.text}>"


class ReplacedModule(nn.Module):
    """Stands in, here, for a module the student's code replaced in the kernel and did not put back."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, *args, **kwargs):
        raise AssertionError(f"a module of the model was replaced by a {self.kind} and not restored")


def _student_exception(name: str, message: str) -> Exception:
    """The student's exception as this side can raise it: its builtin class when it has one."""
    kind = getattr(builtins, str(name), None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        return kind(message)
    return type(str(name) if str(name).isidentifier() else "StudentError", (Exception,), {})(message)


class RemoteFunction:
    """A student function that lives in the kernel. Call it like the function itself;
    ``.apply`` (any attribute) is another remote callable; :meth:`globals_replaced` gives the
    student's function grader callbacks for some of its global names during a block."""

    def __init__(self, session: "TrustedSession", index: int, description: dict, attribute: str | None = None):
        self._session, self._index, self._attribute = session, index, attribute
        self.description = description
        self.__name__ = description.get("name", "function") + (f".{attribute}" if attribute else "")
        self.is_autograd_function = bool(description.get("autograd_function"))
        self._replaced_globals: dict = {}

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = f"{self._attribute}.{name}" if self._attribute else name
        return RemoteFunction(self._session, self._index, self.description, attribute)

    @property
    def target(self) -> wire.KernelFunction:
        return wire.KernelFunction(self._index, self._attribute)

    def __call__(self, *args, **kwargs):
        return self._session.call(self.target, args, kwargs, replaced_globals=self._replaced_globals)

    def forward_and_gradient(self, x: torch.Tensor, incoming: torch.Tensor):
        """``grading_client._forward_and_gradient`` of this function, computed in the kernel."""
        return self._session.call(None, (self, x, incoming), {}, operation="forward_and_gradient")

    def plain_input_gradient(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The plain input gradient of ``model`` as the kernel has it (after this function ran)."""
        return self._session.call(None, (model, x), {}, operation="plain_input_gradient")

    @contextlib.contextmanager
    def globals_replaced(self, **names):
        saved = dict(self._replaced_globals)
        self._replaced_globals.update(names)
        try:
            yield
        finally:
            self._replaced_globals = saved


class _PristineModule:
    """A model the grader sent: ``master`` as it was handed over (never lent), ``training`` its
    modes after the last mirroring, ``lent`` the copy references get while they leave it alone."""

    def __init__(self, trusted: nn.Module):
        self.trusted = trusted  # held, so that its id is not reused
        self.master = copy.deepcopy(trusted)
        for parameter in self.master.parameters():
            parameter.grad = None
        self.training = _modes(trusted)
        self.lent: nn.Module | None = None
        self.lent_fingerprint = None


class _PristineStorage:
    """The memory of tensors the grader sent (views of one tensor share it): ``master`` a copy of
    it when the first of them went; ``versions`` each sent tensor's version counter after the
    last mirroring (a later bump is the grader's own change)."""

    def __init__(self, owner: torch.Tensor, master):
        self.owner, self.master = owner, master  # owner held, so that the memory is not reused
        self.versions: dict[int, tuple[torch.Tensor, int]] = {}


class PristineCopies:
    """What the grader handed the kernel, as it handed it: where a check's expected values come
    from, since the mirrored objects show whatever the kernel did to them.

    A model is deep-copied the first time it is sent; a tensor's memory (storage) is copied the
    first time a tensor on it is sent, so a view taken before or after (``x[:1]``) finds its
    pristine values too, and so does a tensor that shares memory with a sent model's parameter.
    Changes the *grader* makes between calls (its own state or mode changes, in-place changes to
    a tensor it sends again) are carried over; mirrored ones never are. :meth:`substitute` gives a
    reference fresh copies: a new clone of every tensor, and for every model a copy that is
    replaced as soon as a reference leaves it changed (state, modes, hooks, ``.grad``, modules).
    """

    def __init__(self):
        self.modules: dict[int, _PristineModule] = {}   # id(trusted model) -> its pristine copy
        self.storages: dict[int, _PristineStorage] = {}  # data_ptr of a sent storage -> its copy

    # -- what the session tells it
    def module_sent(self, module: nn.Module, grader_changes: dict | None = None) -> None:
        """``module`` goes to the kernel: the first time, copy it; later, ``grader_changes``
        (state changed here since the last mirroring) and changed modes are the grader's own."""
        entry = self.modules.get(id(module))
        if entry is None or entry.trusted is not module:
            entry = self.modules[id(module)] = _PristineModule(module)
            for name, value in module.state_dict(keep_vars=True).items():
                self._adopt_storage(value, entry.master.state_dict(keep_vars=True)[name])
            return
        modes = _modes(module)
        if grader_changes or modes != entry.training:
            master_state = entry.master.state_dict(keep_vars=True)
            with torch.no_grad():
                for name, value in (grader_changes or {}).items():
                    if name in master_state and master_state[name].shape == value.shape:
                        master_state[name].copy_(value)
            master_modules = dict(entry.master.named_modules())
            for name, flag in modes.items():
                if name in master_modules and entry.training.get(name) != flag:
                    master_modules[name].training = flag
            entry.training, entry.lent = modes, None

    def tensor_sent(self, tensor: torch.Tensor) -> None:
        """``tensor`` goes to the kernel: copy its memory the first time; if the grader changed
        it in place since the last mirroring, its values now are what the grader hands over."""
        if not _has_storage(tensor):
            return
        storage = self.storages.get(_storage_key(tensor))
        if storage is None:
            storage = self.storages[_storage_key(tensor)] = _PristineStorage(tensor, tensor.untyped_storage().clone())
        known = storage.versions.get(id(tensor))
        if known is not None and known[0] is tensor and known[1] != tensor._version:
            with torch.no_grad():
                _view(storage.master, tensor).copy_(tensor.detach())
        storage.versions[id(tensor)] = (tensor, tensor._version)

    def mirrored(self) -> None:
        """The kernel's changes were just copied onto the grader's objects: they are not the grader's."""
        for entry in self.modules.values():
            entry.training = _modes(entry.trusted)
        for storage in self.storages.values():
            for key, (tensor, _) in storage.versions.items():
                storage.versions[key] = (tensor, tensor._version)

    # -- what references get
    def substitute(self, value, depth: int = 0):
        """``value`` with a fresh pristine copy in place of every model and tensor the kernel saw."""
        if depth > wire.MAX_DEPTH:
            return value
        if isinstance(value, nn.Module):
            entry = self.modules.get(id(value))
            return self._lend(entry) if entry is not None and entry.trusted is value else value
        if isinstance(value, torch.Tensor):
            storage = self.storages.get(_storage_key(value)) if _has_storage(value) else None
            if storage is None:
                return value
            copied = _view(storage.master, value).clone()
            if value.requires_grad and value.is_leaf:
                copied.requires_grad_(True)
            return copied
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            items = [self.substitute(item, depth + 1) for item in value]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict):
            return {key: self.substitute(item, depth + 1) for key, item in value.items()}
        return value

    def _lend(self, entry: _PristineModule) -> nn.Module:
        if entry.lent is None or _module_fingerprint(entry.lent) != entry.lent_fingerprint:
            entry.lent = copy.deepcopy(entry.master)
            entry.lent_fingerprint = _module_fingerprint(entry.lent)
        return entry.lent

    def _adopt_storage(self, trusted: torch.Tensor, master: torch.Tensor) -> None:
        """A sent model's parameter or buffer: a tensor on its memory has the master's values."""
        if _has_storage(trusted) and _storage_key(trusted) not in self.storages:
            self.storages[_storage_key(trusted)] = _PristineStorage(trusted, master.detach().untyped_storage())


_PRISTINE: contextvars.ContextVar[PristineCopies | None] = contextvars.ContextVar("pristine_copies", default=None)


def current_pristine_copies() -> PristineCopies | None:
    """The pristine copies of the check running in this thread (None outside the check server)."""
    return _PRISTINE.get()


@contextlib.contextmanager
def pristine_copies_in_use(copies: PristineCopies):
    """Inside the block, ``checks.common.on_pristine`` substitutes from ``copies``."""
    token = _PRISTINE.set(copies)
    try:
        yield
    finally:
        _PRISTINE.reset(token)


def _modes(module: nn.Module) -> dict:
    return {name: child.training for name, child in module.named_modules()}


def _has_storage(tensor: torch.Tensor) -> bool:
    return tensor.layout == torch.strided and tensor.numel() > 0 and tensor.device.type != "meta"


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def _view(storage, like: torch.Tensor) -> torch.Tensor:
    """The tensor ``like`` would be on ``storage`` (same offset, shape and strides)."""
    return torch.empty(0, dtype=like.dtype, device=like.device).set_(
        storage, like.storage_offset(), like.size(), like.stride())


def _module_fingerprint(module: nn.Module) -> tuple:
    """What a reference could leave changed on a model it was lent: modules, modes, in-place
    flags, hooks, state, ``.grad``, ``requires_grad``."""
    return (tuple((name, id(child), child.training, getattr(child, "inplace", None),
                   tuple(len(getattr(child, kind, None) or {}) for kind in wire.HOOK_DICTS))
                  for name, child in module.named_modules()),
            wire.state_marks(module),
            tuple((parameter.grad is None, parameter.requires_grad) for parameter in module.parameters()))


class TrustedSession:
    """One check's conversation with a kernel: what was sent (models, tensors, callbacks) and the
    mirroring of what the kernel reports back. ``budget``: the notebook's :class:`WorkBudget`;
    once a message goes over it, :attr:`over_budget` holds the error and every later call raises
    it again (a check that catches a student's exception cannot go on past it)."""

    def __init__(self, connection: socket.socket, budget: WorkBudget | None = None):
        self.connection = connection
        self.budget = budget if budget is not None else WorkBudget()
        self.answer = self.budget.answer()             # the message being read
        self.over_budget: WorkLimitExceeded | None = None
        self.refs = itertools.count(1)
        self.module_refs: dict[int, int] = {}        # id(trusted module) -> ref
        self.modules: dict[int, nn.Module] = {}      # ref -> trusted module
        self.originals: dict[int, dict] = {}         # ref -> {name: module} when first sent
        self.synced: dict[int, dict] = {}            # ref -> state marks when the kernel had the same
        self.tensors: dict[int, torch.Tensor] = {}   # ref -> trusted tensor
        self.callbacks: dict[int, object] = {}       # ident -> trusted callable
        self.pristine = PristineCopies()             # what the grader sent, as it sent it

    # -- to the kernel (pickled: the kernel is allowed to load these)
    def _send_module(self, module: nn.Module) -> wire.SentModule:
        training = [child.training for child in module.modules()]
        ref = self.module_refs.get(id(module))
        if ref is None or self.modules.get(ref) is not module:
            ref = next(self.refs)
            self.module_refs[id(module)], self.modules[ref] = ref, module
            self.originals[ref] = dict(module.named_modules())
            self.synced[ref] = wire.state_marks(module)
            self.pristine.module_sent(module)
            return wire.SentModule(ref, module)
        state, self.synced[ref] = wire.changed_state(module, self.synced[ref])
        self.pristine.module_sent(module, state)
        return wire.SentModule(ref, None, state, training)

    def encode(self, value, depth: int = 0):
        if depth > wire.MAX_DEPTH:
            raise ValueError("arguments nested too deeply")
        if isinstance(value, RemoteFunction):
            return value.target
        if isinstance(value, nn.Module):
            return self._send_module(value)
        if isinstance(value, torch.Tensor):
            ref = next(self.refs)
            self.tensors[ref] = value
            self.pristine.tensor_sent(value)
            sent = value.detach().clone()
            if value.requires_grad and value.is_leaf:
                sent.requires_grad_(True)
            return wire.SentTensor(ref, sent)
        if isinstance(value, (list, tuple)):
            items = [self.encode(item, depth + 1) for item in value]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict):
            return {key: self.encode(item, depth + 1) for key, item in value.items()}
        if callable(value) and not isinstance(value, type):
            ident = next(self.refs)
            self.callbacks[ident] = value
            return wire.Callback(ident, getattr(value, "__name__", type(value).__name__))
        return value

    # -- from the kernel (plain data only)
    def decode(self, value, depth: int = 0):
        if depth > wire.MAX_DEPTH:
            raise wire.ProtocolError("a result nested too deeply")
        if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
            return value
        if isinstance(value, list):
            return [self.decode(item, depth + 1) for item in value]
        if isinstance(value, tuple):
            return tuple(self.decode(item, depth + 1) for item in value)
        if not isinstance(value, dict):
            raise wire.ProtocolError(f"unexpected {type(value).__name__} in a result")
        if "__tensor__" in value:
            tensor = value["__tensor__"]
            if value.get("requires_grad") or value.get("grad_fn"):
                tensor = tensor.requires_grad_(True)
                if value.get("grad_fn"):
                    tensor = tensor.clone()  # a result still attached to a graph
            return tensor
        if "__numpy__" in value:
            return value["__numpy__"].numpy()
        if "__numpy_scalar__" in value:
            return np.dtype(str(value.get("dtype", "float64"))).type(value["__numpy_scalar__"])
        if "__size__" in value:
            return torch.Size([int(v) for v in value["__size__"]])
        if "__dict__" in value:
            return {self.decode(k, depth + 1): self.decode(v, depth + 1) for k, v in value["__dict__"]}
        if "__module__" in value:
            return self._decode_module(value["__module__"])
        if "__object__" in value:
            return Opaque(str(value["__object__"]), str(value.get("repr", "")))
        raise wire.ProtocolError("an untagged dict in a result")

    def _decode_module(self, described: dict):
        ref = described.get("ref")
        if ref is not None:
            if ref not in self.modules:
                raise wire.ProtocolError("a reference to a model that was never sent")
            return self.modules[ref]
        rebuilt = self._rebuild_module(described)
        new_ref = described.get("new_ref")
        if isinstance(rebuilt, nn.Module) and isinstance(new_ref, int) and new_ref < 0 and new_ref not in self.modules:
            # Later mentions come by ref, with the changes in the side effects (deltas, not copies).
            self.modules[new_ref], self.originals[new_ref] = rebuilt, dict(rebuilt.named_modules())
            self.synced[new_ref] = wire.state_marks(rebuilt)
        return rebuilt

    def _rebuild_module(self, described: dict):
        """A model the kernel made (a deep copy of one it was given): rebuilt from the one it copies."""
        structure = _normalized(described.get("structure", []))
        for module in self.modules.values():
            if _normalized(wire.module_structure(module)) == structure:
                self.answer.spend("models rebuilt")
                rebuilt = copy.deepcopy(module)
                with torch.no_grad():
                    own = rebuilt.state_dict(keep_vars=True)
                    for name, value in described.get("state", {}).items():
                        if name in own and own[name].shape == value.shape:
                            own[name].copy_(value)
                for child, flag in zip(rebuilt.modules(), described.get("training", [])):
                    child.training = bool(flag)
                return rebuilt
        return Opaque("torch.nn.Module", "a model the grader did not send")

    # -- mirroring
    def apply_effects(self, effects) -> None:
        if not isinstance(effects, dict):
            raise wire.ProtocolError("side effects missing from an answer")
        for ref, report in (effects.get("models") or {}).items():
            if ref in self.modules:
                _mirror_model(self.modules[ref], self.originals[ref], report)
                self.synced[ref] = wire.state_marks(self.modules[ref])
        for ref, report in (effects.get("tensors") or {}).items():
            tensor = self.tensors.get(ref)
            if tensor is None:
                continue
            with torch.no_grad():
                if report.get("value") is not None and report["value"].shape == tensor.shape:
                    tensor.copy_(report["value"])
            if tensor.is_leaf and report.get("grad") is not None:
                tensor.grad = report["grad"]
        self.pristine.mirrored()

    # -- the conversation
    def call(self, target, args, kwargs, operation: str | None = None, replaced_globals: dict | None = None):
        if self.over_budget is not None:
            raise self.over_budget
        try:
            return self._call(target, args, kwargs, operation, replaced_globals)
        except WorkLimitExceeded as error:
            self.over_budget = error
            raise

    def receive(self):
        """The kernel's next message (:func:`receive_message`, counted as a new answer)."""
        self.answer = self.budget.answer()
        return receive_message(self.connection, self.answer)

    def _call(self, target, args, kwargs, operation, replaced_globals):
        message = wire.Call(target, self.encode(tuple(args)), self.encode(dict(kwargs)), operation,
                            {name: self.encode(value) for name, value in (replaced_globals or {}).items()},
                            grad_enabled=torch.is_grad_enabled())
        wire.send_frame(self.connection, message)
        while True:
            answer = self.receive()
            if not isinstance(answer, dict):
                raise wire.ProtocolError("an answer that is not a message")
            operation_name = answer.get("op")
            if operation_name == "callback":
                self.answer.spend("grader callbacks run")
                self.apply_effects(answer.get("effects"))
                wire.send_frame(self.connection, self._run_callback(answer))
                continue
            if operation_name not in ("return", "raised"):
                raise wire.ProtocolError(f"unexpected message {operation_name!r}")
            self.apply_effects(answer.get("effects"))
            if operation_name == "raised":
                raise _student_exception(answer.get("type", "Exception"), str(answer.get("message", "")))
            return self.decode(answer.get("value"))

    def _run_callback(self, request: dict) -> dict:
        function = self.callbacks.get(request.get("id"))
        if function is None:
            return {"op": "raised", "type": "RuntimeError", "message": "unknown callback"}
        try:
            args = self.decode(request.get("args", ()))
            kwargs = self.decode(request.get("kwargs", {"__dict__": []}))
            if not isinstance(kwargs, dict):
                raise wire.ProtocolError("callback keyword arguments are not a dict")
            with torch.set_grad_enabled(bool(request.get("grad_enabled", True))):
                result = function(*args, **{str(key): item for key, item in kwargs.items()})
            return {"op": "return", "value": _detached(result)}
        except WorkLimitExceeded:
            raise
        except Exception as error:  # noqa: BLE001 (handed back to the student's code as its exception)
            return {"op": "raised", "type": type(error).__name__, "message": str(error)[:2000]}


def _normalized(structure) -> list:
    """``module_structure`` with every list a tuple (what came over the wire compares equal)."""
    return [(name, kind, tuple((parameter, tuple(shape)) for parameter, shape in parameters))
            for name, kind, parameters in structure]


def _detached(value, depth: int = 0):
    """A callback's result for the kernel: tensors detached (a graph cannot be sent), containers kept."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if depth < wire.MAX_DEPTH and isinstance(value, (list, tuple)):
        items = [_detached(item, depth + 1) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if depth < wire.MAX_DEPTH and isinstance(value, dict):
        return {key: _detached(item, depth + 1) for key, item in value.items()}
    return value


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attribute = name.rpartition(".")
    try:
        parent = root.get_submodule(parent_name) if parent_name else root
    except AttributeError:
        return
    parent._modules[attribute] = module


def _mirror_hooks(module: nn.Module, counts) -> None:
    """Give ``module`` as many hooks per kind as the kernel's copy has (no-op stand-ins)."""
    added = module.__dict__.setdefault("_xai_mirror_hooks", {})
    for kind, count in zip(wire.HOOK_DICTS, counts):
        hooks = getattr(module, kind, None)
        if hooks is None:
            continue
        for key in added.pop(kind, []):
            hooks.pop(key, None)
        keys = []
        while len(hooks) < min(int(count), MAX_MIRRORED_HOOKS):
            key = -(len(keys) + 1) - 10**9
            hooks[key] = _no_op_hook
            keys.append(key)
        added[kind] = keys


def _no_op_hook(*args, **kwargs):
    return None


def _mirror_model(model: nn.Module, originals: dict, report: dict) -> None:
    """Make ``model`` (here) look as the kernel's copy does after the call."""
    for name in sorted(report.get("replaced", []), key=len):
        # Another object now: a copy of the original (same behaviour here, a different identity, so
        # that a check comparing module objects sees the replacement).
        if name and name in originals:
            _set_submodule(model, name, copy.copy(originals[name]))
    now = dict(model.named_modules())
    for name in report.get("names", []):
        if name not in now and name:
            _set_submodule(model, name, ReplacedModule(str(report.get("types", {}).get(name, "module"))))
    now = dict(model.named_modules())
    for name, flag in report.get("training", {}).items():
        if name in now:
            now[name].training = bool(flag)
    for name, flag in report.get("inplace", {}).items():
        if name in now and isinstance(getattr(now[name], "inplace", None), bool):
            now[name].inplace = bool(flag)
    for name, counts in report.get("hooks", {}).items():
        if name in now:
            _mirror_hooks(now[name], counts)
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for name, value in report.get("changed_state", {}).items():
            if name in state and isinstance(value, torch.Tensor) and state[name].shape == value.shape:
                state[name].copy_(value)
    grads = report.get("grads", {})
    flags = report.get("requires_grad", {})
    for name, parameter in model.named_parameters():
        gradient = grads.get(name)
        parameter.grad = gradient if isinstance(gradient, torch.Tensor) and gradient.shape == parameter.shape else None
        if name in flags:
            parameter.requires_grad_(bool(flags[name]))


# ---------------------------------------------------------------------------------------------
# The server


def check_modules() -> set:
    import autograder.engine.checks

    return {info.name for info in pkgutil.iter_modules(autograder.engine.checks.__path__)} - {"common"}


def _check_function(module_name: str, check: str):
    """The check ``check`` of ``autograder.engine.checks.<module_name>``, or None when it is not one."""
    if not isinstance(module_name, str) or module_name not in check_modules():
        return None, None
    module = importlib.import_module(f"autograder.engine.checks.{module_name}")
    function = getattr(module, check, None) if isinstance(check, str) and check.startswith("check_") else None
    if not callable(function) or getattr(function, "__module__", None) != module.__name__:
        return module, None
    return module, function


def run_check(connection: socket.socket, request, budget: WorkBudget | None = None) -> tuple[str, bool, str]:
    """Run the check ``request`` asks for over ``connection``, within ``budget`` (the notebook's);
    return (name, passed, message)."""
    if not isinstance(request, dict) or request.get("op") != "run":
        return "", False, "not a hidden-check request"
    module, check = request.get("module"), request.get("check")
    name = f"{module}.{check}"
    _, function = _check_function(module, check)
    if function is None:
        return name, False, f"there is no hidden check {name}"
    descriptions = [item for item in request.get("functions", []) if isinstance(item, dict)]
    session = TrustedSession(connection, budget)
    remote = [RemoteFunction(session, index, description) for index, description in enumerate(descriptions)]
    try:
        with torch.random.fork_rng(devices=[]), pristine_copies_in_use(session.pristine):
            function(*remote)
        if session.over_budget is not None:
            raise session.over_budget
    except WorkLimitExceeded as error:
        return name, False, f"hidden check failed: {error}"
    except wire.ProtocolError as error:
        return name, False, f"hidden check failed: the notebook broke the grader's connection ({error})"
    except AssertionError as error:
        return name, False, f"hidden check failed: {error}"[:1000]
    except Exception as error:  # noqa: BLE001 (a student function that raises fails the check)
        return name, False, f"hidden check failed: your code raised {type(error).__name__}: {error}"[:1000]
    return name, True, ""


class GradedNotebook:
    """The notebook being graded: its ``token`` (in its kernels' environment), the work its
    kernels have made this process do (``budget``)."""

    def __init__(self):
        self.token = secrets.token_hex(16)
        self.budget = WorkBudget()


class CheckServer:
    """Listens at ``address``; runs the checks its connections ask for; keeps, for the notebook
    being graded (:meth:`begin_notebook` to :meth:`end_notebook`), ``{cell index: {check: passed}}``.

    Without a notebook begun (``validate``, ``figures``: the instructor's own notebooks) checks
    run and answer, with a budget per connection, and no verdict is kept."""

    def __init__(self, address: str):
        self.address = address
        self.lock = threading.Lock()
        self.notebook: GradedNotebook | None = None
        self.current_cell: int | None = None
        self.verdicts: dict[int, dict[str, bool]] = {}
        self.connections: dict[socket.socket, GradedNotebook | None] = {}  # open -> the notebook it came in
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(address)
        os.chmod(address, 0o777)  # the sandbox's uid must be able to connect
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._serve, name="hidden-check-server", daemon=True)
        self.thread.start()

    def begin_notebook(self) -> GradedNotebook:
        """A new notebook: a new token, in ``os.environ`` (start its kernels after this), no
        verdicts, no cell running; connections still open (an earlier notebook's) are closed."""
        with self.lock:
            self._close_connections()
            self.notebook, self.verdicts, self.current_cell = GradedNotebook(), {}, None
            os.environ[TOKEN_ENV] = self.notebook.token
            return self.notebook

    def end_notebook(self) -> dict:
        """The notebook is done: return its verdicts; close its connections; its token is void."""
        with self.lock:
            verdicts = {index: dict(found) for index, found in self.verdicts.items()}
            self._close_connections()
            self.notebook, self.verdicts, self.current_cell = None, {}, None
            os.environ.pop(TOKEN_ENV, None)
            return verdicts

    def cell_started(self, index: int) -> None:
        with self.lock:
            self.current_cell = index

    def passed_in(self, index: int) -> set:
        """Checks that passed while cell ``index`` ran (a failure in the same cell wins)."""
        with self.lock:
            return {name for name, passed in self.verdicts.get(index, {}).items() if passed}

    def _close_connections(self) -> None:
        """(Lock held.) Shut every open check connection: its thread stops at its next read or
        write, and what it finds is recorded nowhere (:meth:`_record` sees another notebook)."""
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _record(self, notebook: GradedNotebook | None, cell: int | None, name: str, passed: bool) -> None:
        with self.lock:
            if notebook is None or notebook is not self.notebook or cell is None or not name:
                return
            found = self.verdicts.setdefault(cell, {})
            found[name] = found.get(name, True) and passed

    def _serve(self) -> None:
        """One thread per connection: while grading, one kernel talks at a time; ``validate``
        runs several notebooks side by side against one server. A connection belongs to the
        notebook being graded when it is accepted (and is closed with it)."""
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                notebook, cell = self.notebook, self.current_cell
                crowded = sum(owner is notebook for owner in self.connections.values()) >= MAX_OPEN_CONNECTIONS
                if not crowded:
                    self.connections[connection] = notebook
            threading.Thread(target=self._handle_and_close, args=(connection, notebook, cell, crowded),
                             daemon=True).start()

    def _handle_and_close(self, connection: socket.socket, notebook: GradedNotebook | None, cell: int | None,
                          crowded: bool) -> None:
        with connection:
            if crowded:
                self._answer(connection, False, f"hidden check refused: more than {MAX_OPEN_CONNECTIONS} "
                                                "check connections open at once")
                return
            try:
                self._handle(connection, notebook, cell)
            finally:
                with self.lock:
                    self.connections.pop(connection, None)

    def _handle(self, connection: socket.socket, notebook: GradedNotebook | None, cell: int | None) -> None:
        budget = notebook.budget if notebook is not None else WorkBudget()
        name = ""
        try:
            request = receive_message(connection, budget.answer())
            if isinstance(request, dict) and not _carries_token(request, notebook):
                passed, message = False, STALE_MESSAGE
            else:
                name, passed, message = run_check(connection, request, budget)
        except WorkLimitExceeded as error:
            passed, message = False, f"hidden check failed: {error}"
        except Exception as error:  # noqa: BLE001 (a broken request fails; the server goes on)
            passed, message = False, f"hidden check failed: {type(error).__name__}: {str(error)[:300]}"
        self._record(notebook, cell, name, passed)
        self._answer(connection, passed, message)

    @staticmethod
    def _answer(connection: socket.socket, passed: bool, message: str) -> None:
        with contextlib.suppress(OSError):
            wire.send_frame(connection, {"op": "verdict", "passed": passed, "message": message})

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()


def _carries_token(request: dict, notebook: GradedNotebook | None) -> bool:
    """Whether ``request`` carries the token of ``notebook`` (none: the empty token)."""
    token = request.get("token", "")
    return isinstance(token, str) and hmac.compare_digest(token.encode(), (notebook.token if notebook else "").encode())


_server: CheckServer | None = None
_server_lock = threading.Lock()


def ensure_running() -> CheckServer:
    """This process's server (started on first use, in a new private folder); its address is put
    in ``os.environ`` so that kernels started from here find it."""
    global _server
    with _server_lock:
        if _server is None:
            address = os.environ.get(SOCKET_ENV)  # chosen by the nbgrader worker before its sandbox
            if not address or Path(address).exists() or not Path(address).parent.is_dir():
                folder = Path(tempfile.mkdtemp(prefix="xai-checks-"))
                folder.chmod(0o755)
                address = str(folder / "checks.sock")
            _server = CheckServer(address)
            os.environ[SOCKET_ENV] = _server.address
        return _server
