"""Self-checks the notebooks' visible test cells call, and that students can call themselves.

Comparisons use a relative error that stays meaningful near zero (as in EECS 498):

    rel_error(x, y) = max |x - y| / (max |x| + max |y|)      (0 when both are all zeros)

A check raises ``AssertionError`` with a message that says what is wrong; it never prints to
stderr (nbgrader scores a test cell that writes to stderr as failed).

The test cells call your functions through :func:`call`, which (1) starts from a known state:
the notebook's model back in eval mode with the weights and BatchNorm statistics it was loaded
with, (2) turns the crashes that come from a few common mistakes (a detached tensor where a
gradient is needed, a layer name that needs ``model.get_submodule``, ``.squeeze()`` on a batch of
one image, ...) into a message that says what to change, and (3) checks right after the call
that your function left the model's train/eval mode, weights and BatchNorm statistics as they
were. The messages name the mistake; they never contain expected values.
"""

from __future__ import annotations

import re
import sys
import traceback
import weakref
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn


def rel_error(x, y) -> float:
    """max|x - y| / (max|x| + max|y|), as a Python float; 0.0 when both are all zeros."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().double().cpu()
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).detach().double().cpu()
    if x.shape != y.shape:
        raise AssertionError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    scale = x.abs().max().item() + y.abs().max().item() if x.numel() else 0.0
    return 0.0 if scale == 0 else (x - y).abs().max().item() / scale


def assert_close(got, expected, tol: float, what: str, known_mistakes=None, axes=None,
                 reveal_expected: bool = True) -> float:
    """Raise ``AssertionError`` unless ``rel_error(got, expected) <= tol``; return the error.

    The shape is compared first, a NaN or infinite value is named as such, and an integer
    tensor where floats are expected fails even when its values happen to be right. A failing
    comparison says *how* the values differ (``student_src.diagnose.describe``: a flipped sign,
    a constant factor, maps scaled over the whole batch, which images and positions differ, the
    first differing element...), so the message keeps ``what`` and names the mistake.

    ``known_mistakes``: ``{"a log_softmax score instead of the raw logit": lambda: ...}``, what
    named mistakes would give, computed only when the comparison fails; ``axes`` names the
    dimensions (``("image", "region")``); ``reveal_expected=False`` keeps the expected values
    out of the message (the hidden checks').
    """
    from student_src import diagnose

    expected_tensor = torch.as_tensor(np.asarray(expected) if not isinstance(expected, torch.Tensor) else expected)
    assert_shape(got, tuple(expected_tensor.shape), what)
    if got.is_floating_point() and not torch.isfinite(got).all():
        raise AssertionError(f"{what}: {_NOT_FINITE}")
    error = rel_error(got, expected_tensor)
    if not error <= tol or diagnose.integer_where_float(got, expected_tensor):
        bound = ("" if error <= tol else " must be exactly 0" if tol == 0 else f" is above the tolerance {tol:.0e}")
        how = diagnose.describe(got, expected_tensor, tol, known_mistakes, axes, reveal_expected)
        raise AssertionError(f"{what}: {how} (relative error {error:.2e}{bound})")
    return error


_NOT_FINITE = ("contains NaN or infinite values: a division by zero? A constant map has max - min = 0; "
               "keep the small constant in the denominator (m / (max(m) + 1e-7))")


def assert_shape(tensor, shape: tuple, what: str) -> None:
    """Raise unless ``tensor`` is a tensor of exactly ``shape``; name a dropped size-1 dimension."""
    if not isinstance(tensor, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(tensor).__name__}")
    got, shape = tuple(tensor.shape), tuple(shape)
    if got != shape:
        hint = ""
        if got == tuple(size for size in shape if size != 1) and 1 in shape:
            hint = (": a dimension of size 1 is missing. `.squeeze()` without an argument also removes the "
                    "batch dimension of a batch of one image; squeeze only the dimension you mean "
                    "(`.squeeze(1)` or `[:, 0]`)")
        elif got[-2:] == (32, 32) and len(got) == len(shape) and got[:-2] == shape[:-2]:
            hint = (": that is CIFAR's image size; take the size from the input (`x.shape[-2:]`) or from the "
                    "`size` argument instead of a fixed (32, 32)")
        raise AssertionError(f"{what}: expected shape {shape}, got {got}{hint}")


def assert_map_invariants(maps, shape: tuple, what: str) -> None:
    """Heatmaps: a float tensor of ``shape``, finite, every value in [0, 1]."""
    assert_shape(maps, shape, what)
    if not maps.is_floating_point():
        raise AssertionError(f"{what}: expected a floating-point tensor, got {maps.dtype}")
    if not torch.isfinite(maps).all():
        raise AssertionError(f"{what}: {_NOT_FINITE}")
    if maps.numel() and (maps.min() < 0 or maps.max() > 1):
        raise AssertionError(f"{what}: values must lie in [0, 1], got [{maps.min():.3g}, {maps.max():.3g}]")


def count_hooks(model: nn.Module) -> int:
    """Number of forward, forward-pre and backward hooks registered on ``model``'s modules."""
    from student_src.grading_client import HOOK_DICTS

    return sum(len(getattr(module, name, None) or {}) for module in model.modules() for name in HOOK_DICTS)


class ModelSnapshot:
    """What a well-behaved explanation function leaves untouched: modules, modes, weights, grads.

    ``snapshot = ModelSnapshot(model)`` before, ``snapshot.assert_unchanged(model, what)`` after.
    """

    def __init__(self, model: nn.Module):
        self.modules = {name: module for name, module in model.named_modules()}
        self.training = {name: module.training for name, module in model.named_modules()}
        self.inplace = {name: getattr(module, "inplace", None) for name, module in model.named_modules()}
        self.parameters = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.hooks = count_hooks(model)

    def assert_unchanged(self, model: nn.Module, what: str) -> None:
        now = dict(model.named_modules())
        if set(now) != set(self.modules) or any(now[n] is not m for n, m in self.modules.items()):
            raise AssertionError(f"{what}: the model's modules were replaced or not restored")
        if {n: m.training for n, m in now.items()} != self.training:
            raise AssertionError(f"{what}: the model's train/eval mode was changed")
        if {n: getattr(m, "inplace", None) for n, m in now.items()} != self.inplace:
            raise AssertionError(f"{what}: a module's inplace flag was changed")
        if count_hooks(model) != self.hooks:
            raise AssertionError(f"{what}: {count_hooks(model) - self.hooks} hook(s) left registered on the model")
        for name, parameter in model.named_parameters():
            if not torch.equal(parameter.detach(), self.parameters[name]):
                raise AssertionError(f"{what}: parameter {name} was modified")
            if parameter.grad is not None and parameter.grad.abs().sum() > 0:
                raise AssertionError(f"{what}: parameter {name} has a .grad left behind")


@contextmanager
def quiet_warnings():
    """Silence Python warnings inside the block (a warning in a test cell fails it in nbgrader)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def globals_replaced(function, **names):
    """Inside the block, ``function`` sees ``names`` as its globals; they are restored afterwards.

    A function defined in a notebook looks up the helpers it calls (``scale_cams``, say) in the
    notebook's namespace when it runs. The tests use this to check your Assignment 4 function
    with *known-good* Assignment 2 helpers, so that a mistake in helpers you pasted is not
    counted a second time::

        with checks.globals_replaced(layer_cam, scale_cams=library_cams.library_scale_cams):
            maps = layer_cam(model, "layer3", x)

    Every function of the same namespace sees the replacements during the block. Names that did
    not exist before are removed again; a function without ``__globals__`` is called as it is.
    """
    if hasattr(function, "globals_replaced"):  # a function the grader calls in another process
        with function.globals_replaced(**names):
            yield
        return
    namespace = getattr(function, "__globals__", None)
    if namespace is None or not names:
        yield
        return
    absent = object()
    saved = {name: namespace.get(name, absent) for name in names}
    namespace.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is absent:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def hello() -> None:
    """First cell of every notebook: prove the environment works and say what is missing."""
    from student_src import assets, models

    print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, device: {models.default_device()}")
    mode = "STAND-IN (untrained, synthetic images)" if assets.standin_requested() else "real"
    print(f"Assets: {mode}, in {assets.asset_root()}")
    checkpoint = models.checkpoint_path()
    from student_src.data import BATCH_FOLDER

    dataset = assets.asset_root() / BATCH_FOLDER / "test_batch"
    for what, path in (("model checkpoint", checkpoint), ("CIFAR-10 test split", dataset)):
        state = "ok" if path.is_file() else f"MISSING: run {assets.FETCH_COMMAND}"
        print(f"  {what}: {state}")


# ---------------------------------------------------------------------------------------------
# Calling a student's function from a test cell


#: The state each model had when the notebook loaded it (``session.start`` remembers it): the
#: test cells put a model back into this state before they call your function.
_KNOWN_STATES: "weakref.WeakKeyDictionary[nn.Module, _ModelState]" = weakref.WeakKeyDictionary()


class _ModelState:
    """Train/eval flags, parameters and buffers (BatchNorm running statistics) of a model."""

    def __init__(self, model: nn.Module):
        self.training = {name: module.training for name, module in model.named_modules()}
        # Which object each name held: a module put in another's place (guided backprop's ReLUs) is
        # a change of structure, which ModelSnapshot reports; only the modules still there count here.
        self.module_ids = {name: id(module) for name, module in model.named_modules()}
        self.parameters = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.buffers = {name: b.detach().clone() for name, b in model.named_buffers()}

    def differences(self, model: nn.Module, compare_buffers: bool = True) -> list[str]:
        """What changed, as phrases that name the mistake ("left the model in train mode", ...)."""
        found = []
        flags = {name: module.training for name, module in model.named_modules()
                 if self.module_ids.get(name) == id(module)}
        changed = [name for name, flag in flags.items() if self.training.get(name, flag) != flag]
        if changed:
            now = "train" if flags[changed[0]] else "eval"
            before = "eval" if now == "train" else "train"
            where = "the model" if "" in changed else f"module {changed[0]!r}"
            found.append(f"left {where} in {now} mode (it was in {before} mode): do not call "
                         f"`model.train()` or `model.eval()` in your function (a function that must switch "
                         f"restores the mode it found, in `finally`)")
        for name, parameter in model.named_parameters():
            if name in self.parameters and not torch.equal(parameter.detach(), self.parameters[name]):
                found.append(f"changed the weights of the model (parameter {name}): work on copies "
                             f"(`.clone()`), never modify a parameter in place")
                break
        if compare_buffers:
            for name, buffer in model.named_buffers():
                if name in self.buffers and not torch.equal(buffer, self.buffers[name]):
                    found.append(f"changed the BatchNorm running statistics ({name}): the forward pass ran in "
                                 f"train mode; leave the model's mode alone (it is in eval mode here)")
                    break
        return found

    def restore(self, model: nn.Module) -> None:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in self.parameters:
                    parameter.copy_(self.parameters[name])
            for name, buffer in model.named_buffers():
                if name in self.buffers:
                    buffer.copy_(self.buffers[name])
        for name, module in model.named_modules():
            if self.module_ids.get(name) == id(module):
                module.training = self.training[name]


def remember_model(model: nn.Module) -> nn.Module:
    """Remember ``model``'s current state as the one every test cell starts from (``session.start``)."""
    _KNOWN_STATES[model] = _ModelState(model)
    return model


def restore_known_state(model: nn.Module) -> bool:
    """Put a remembered model back into its remembered state; ``True`` when something had changed."""
    known = _KNOWN_STATES.get(model)
    if known is None or not known.differences(model):
        return False
    known.restore(model)
    return True


def _restore_with_a_note(model: nn.Module, before: str) -> None:
    """Put a remembered model back into its loaded state, and say so if that was needed."""
    if restore_known_state(model):
        print(f"Note: the model was not in the state the notebook loaded it in (an earlier cell changed its "
              f"mode or statistics); it was put back before {before}.")


def fresh_copy(model: nn.Module) -> nn.Module:
    """A deep copy of the notebook's ``model`` in the state the notebook loaded it in.

    The test cells of Assignments 3 to 5 call your functions on such a copy, so that nothing your
    function does to its model reaches the notebook's own ``model``, and every check starts from
    eval mode and the loaded weights and statistics, whatever an earlier cell did.
    """
    import copy

    _restore_with_a_note(model, "this check")
    return copy.deepcopy(model)


#: Known crashes -> what to change. Each entry: exception types, a regular expression its
#: message matches, and the message to show (``{name}`` is filled from the match).
_KNOWN_CRASHES = (
    ((RuntimeError,), r"One of the differentiated Tensors does not require grad",
     "torch.autograd.grad was given a tensor that is not part of the autograd graph. Your forward hook "
     "probably kept `output.detach()`: keep the layer's `output` itself (or the copy your hook returns) "
     "to differentiate with respect to it, and detach only what you return"),
    ((RuntimeError,), r"appears to not have been used in the graph",
     "the tensor you differentiate with respect to was not used to compute the score: keep a tensor the "
     "rest of the network is computed from, the layer's `output` itself or the copy your hook returns "
     "(a copy that is kept but not returned is not in the graph)"),
    ((RuntimeError,), r"element 0 of tensors does not require grad",
     "the score has no autograd graph: the forward pass ran without gradients (a caller may be inside "
     "`torch.no_grad()`: run the forward pass and the gradient inside `with torch.enable_grad():`), or the "
     "logits or activations were detached before you differentiated"),
    ((AttributeError, KeyError), r"""(?:no attribute|^)\s*[`'"]?(?P<name>\w+(?:\.\w+)+)[`'"]?""",
     "'{name}' is a path of module names, not one attribute: look layers up with "
     "`model.get_submodule(name)`, which follows the dots (`getattr`, `model._modules[...]` and "
     "`dict(model.named_children())` know only the top-level names)"),
    ((RuntimeError,), r"selected index k out of range",
     "`topk` was asked for more values than the dimension it selects along has: the channel means are "
     "(B, C), so take the top channels along `dim=1` (dim=0 is the batch)"),
    ((ValueError, NotImplementedError), r"(same number of spatial dimensions|needs 4D input)",
     "`F.interpolate` needs a (B, 1, h, w) tensor for 2-D (bilinear) resizing: add the channel dimension "
     "(`maps[:, None]` or `.unsqueeze(1)`) before and remove it (`[:, 0]`) after"),
    ((IndexError, RuntimeError), r"too many indices for tensor of dimension 0|invalid index of a 0-dim tensor|"
                                 r"Index tensor must have the same number of dimensions",
     "a tensor without dimensions was indexed: one int target (`targets=7`) becomes a 0-d tensor, which has "
     "no entry per image. Expand the targets to one per image first: "
     "`torch.as_tensor(targets).reshape(-1).expand(len(x))` (an int, a list and a tensor all work then)"),
    ((IndexError, RuntimeError), r"Dimension out of range",
     "a tensor has fewer dimensions than your code indexes. Often `.squeeze()` without an argument: on a "
     "batch of one image it also removes the batch dimension; squeeze only the dimension you mean "
     "(`.squeeze(1)` or `[:, 0]`)"),
)

_THIS_FILE = str(Path(__file__).resolve())


def _where_in_your_code(error: BaseException) -> str:
    """' (in your code: `line`)' for the last frame of the traceback that is not torch's or ours."""
    torch_dir = str(Path(torch.__file__).resolve().parent)
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not str(Path(frame.filename).resolve()).startswith((torch_dir, _THIS_FILE))
              and "site-packages" not in frame.filename and frame.line]
    return f" (raised at: `{frames[-1].line.strip()}`)" if frames else ""


_LATE_BOUND_NAME = (
    "{name!r} is one of the names asked for, but the dict has no entry for it. A hook defined in a loop that "
    "uses the loop variable sees the variable's value when the hook *runs*, after the loop: every hook then "
    "stores under the last name. Bind the name when you define the hook: `def hook(module, inputs, output, "
    "name=name):` (a default argument) or `functools.partial(hook, name)`")


def _names_in(values) -> set:
    """The strings among ``values``, also inside lists and tuples (layer names a test passed)."""
    names = set()
    for value in values:
        if isinstance(value, str):
            names.add(value)
        elif isinstance(value, (list, tuple)):
            names |= _names_in(value)
    return names


def explain_crash(error: BaseException, arguments=()) -> str | None:
    """What a known crash usually means and what to change, or ``None`` for any other error.

    ``arguments``: what the crashed function was called with; a ``KeyError`` for one of the
    names among them is the late-bound loop variable of a hook.
    """
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    for types, pattern, explanation in _KNOWN_CRASHES:
        match = re.search(pattern, text) if isinstance(error, types) else None
        if match:
            return explanation.format(**match.groupdict())
    key = text.strip("'\"")
    if isinstance(error, KeyError) and key in _names_in(arguments):
        return _LATE_BOUND_NAME.format(name=key)
    return None


_HOOK_KINDS = {"_forward_hooks": "forward hook", "_forward_pre_hooks": "forward pre-hook",
               "_backward_hooks": "backward hook", "_backward_pre_hooks": "backward pre-hook"}


def leftover_hooks(model: nn.Module, name: str = "model") -> str | None:
    """'model.layer4 has 1 forward hook left ...' for hooks registered on ``model`` before a check
    calls a function on it (a cell run twice leaves the first run's hook), or ``None``."""
    from student_src.grading_client import HOOK_DICTS

    found = []
    for path, module in model.named_modules():
        for attribute in HOOK_DICTS:
            count = len(getattr(module, attribute, None) or {})
            if count:
                kind = _HOOK_KINDS.get(attribute, "hook") + ("s" if count > 1 else "")
                found.append(f"{name}{'.' + path if path else ''} has {count} {kind}")
    if not found:
        return None
    return (f"{', '.join(found[:3])}{' and more' if len(found) > 3 else ''} left from an earlier run (a cell that "
            "registers a hook and ran twice, or an earlier function that did not remove its hook): every forward "
            "pass runs it. Remove it (`handle.remove()`) or restart the kernel, then run the cells again")


@contextmanager
def hooks_set_aside(model: nn.Module, name: str, what: str):
    """Run the block with the hooks already on ``model`` taken off, and put them back after it.

    A hook left by an earlier cell (a cell that ran twice, a debug hook, an earlier function that
    did not remove its own) would run inside the function a check calls and change what it
    computes or prints: the check would then blame a correct function. So the check names the
    hooks in a printed note, calls the function on the model without them, and puts them back
    afterwards, in the same hook dictionaries (the handles that remove them keep working). Hooks
    the function itself leaves are not touched here: the cleanup checks count them.
    """
    from student_src.grading_client import HOOK_DICTS

    found = leftover_hooks(model, name)
    if found is None:
        yield
        return
    print(f"Note: {found}. This check set them aside while it called {what}.")
    kept = [(hooks, list(hooks.items())) for module in model.modules() for attribute in HOOK_DICTS
            if (hooks := getattr(module, attribute, None))]
    for hooks, _ in kept:
        hooks.clear()
    try:
        yield
    finally:
        for hooks, items in kept:
            added = list(hooks.items())
            hooks.clear()
            hooks.update(items)
            hooks.update(added)


def _argument_names(function, args, kwargs) -> list:
    """``[(name, value)]`` of the call's arguments, named after ``function``'s parameters when it has a signature."""
    import inspect

    try:
        signature = inspect.signature(function)
        bound = signature.bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return [(f"argument {i + 1}", value) for i, value in enumerate(args)] + list(kwargs.items())
    named = []
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            named += [(f"argument {len(named) + i + 1}", item) for i, item in enumerate(value)]
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named += list(value.items())
        else:
            named.append((name, value))
    return named


def input_snapshots(function, args, kwargs) -> list:
    """Copies of the tensors a call gets (``[(name, tensor, copy)]``), for :func:`changed_inputs`."""
    return [(name, value, value.detach().clone()) for name, value in _argument_names(function, args, kwargs)
            if isinstance(value, torch.Tensor)]


def changed_inputs(snapshots, what: str) -> str | None:
    """The message for a call that changed a tensor it was given in place, or ``None``."""
    for name, tensor, before in snapshots:
        now = tensor.detach()
        if now.shape != before.shape or not torch.equal(torch.nan_to_num(now, 0.0), torch.nan_to_num(before, 0.0)):
            return (f"{what} changed its argument `{name}` in place (itself or a function it calls): the caller's "
                    f"tensor is not yours to change. Work on a copy (`{name}.clone()`, or `torch.where(mask, a, b)`, which "
                    "makes a new tensor) before you blank, clamp or overwrite values")
    return None


def call(function, *args, what: str | None = None, **kwargs):
    """Call your ``function(*args, **kwargs)`` as a test cell does, and return its result.

    1. Every model among the arguments that the notebook loaded is put back into the state it was
       loaded in (eval mode, its weights and BatchNorm statistics), in case an earlier cell
       changed it; a note is printed when that was needed.
    2. A crash from a known mistake becomes an ``AssertionError`` that says what to change (and
       which line of your code raised); any other exception is raised as it is.
    3. Right after the call, each model among the arguments must have the same train/eval mode
       and weights as before and, if it was in eval mode, the same BatchNorm statistics (in
       train mode a forward pass updates them by design). If not, the model is put back and an
       ``AssertionError`` names what your function changed.
    4. Hooks already registered on a model among the arguments (left by a cell that ran twice,
       or a debug hook) are named in a note and set aside during the call (:func:`hooks_set_aside`):
       they must not change what a correct function computes. After the call, a tensor argument
       your function changed in place and a result of ``None`` (a function that prints instead
       of returning) are named.

    ``what`` names the call in messages (default: the function's name).
    """
    what = what or f"{getattr(function, '__name__', 'your function')}(...)"
    named = _argument_names(function, args, kwargs)
    models = [(name, value) for name, value in named if isinstance(value, nn.Module)]
    for name, model in models:
        _restore_with_a_note(model, f"calling {what}")
    before = [(model, _ModelState(model)) for _, model in models]
    inputs = input_snapshots(function, args, kwargs)
    try:
        with ExitStack() as set_aside:
            for name, model in models:
                set_aside.enter_context(hooks_set_aside(model, name, what))
            result = function(*args, **kwargs)
    except Exception as error:
        explanation = explain_crash(error, [value for _, value in named])
        if explanation is None:
            raise
        message = f"{what} raised {type(error).__name__}: {explanation}{_where_in_your_code(error)}"
        raise AssertionError(message) from None
    finally:
        problems = []
        for model, state in before:
            changes = state.differences(model, compare_buffers=not any(state.training.values()))
            if changes:
                state.restore(model)
            problems += changes
    if problems:
        raise AssertionError(f"{what} {problems[0]}. (The model was put back as it was.)")
    changed = changed_inputs(inputs, what)
    if changed:
        raise AssertionError(changed)
    if result is None:
        raise AssertionError(f"{what} returned None: it must `return` its result (a function that only "
                             "`print`s what it computed, or whose `return` is missing or inside an `if` that "
                             "did not run, returns None)")
    return result
