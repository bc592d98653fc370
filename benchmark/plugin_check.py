"""Config-time checks that a component (built-in or plug-in) keeps its interface.

A broken plug-in should fail before any trial starts, with one message that names it and the
problem (exit status 2), not minutes later inside a Ray worker. :func:`check_defense` runs a
defense once on a tiny probe classifier and batch: wrap the model, prepare the training set-up,
capture the requested features, compute the loss, back-propagate, step the optimiser, end the
training. :func:`check_attack` runs an attack once, with its ``probe_params`` budget, on a
tiny probe target (and a tiny generator prior if it needs one) and checks the
:class:`AttackOutput` it returns. Both are used by ``build_components`` (every
``run``); ``lsmia-bench submit`` runs the defense check.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import difflib
import math
import numbers
import random
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from lsmia_bench.kernel.errors import UserError

#: The methods of the defense interface (see :mod:`defenses.base`).
DEFENSE_METHODS = ("wrap_model", "feature_layers", "loss", "at_epoch")

#: Epochs of the schedule probe: ``at_epoch`` is called for each of them.
PROBE_EPOCHS = 4

#: ``TrainingSetup.epochs`` of the probe set-up (TL-DMI pre-trains for as many epochs).
PROBE_SETUP_EPOCHS = 2

#: Probe images given as ``TrainingSetup.public``: a few, so that pre-training stays cheap.
PROBE_PUBLIC_IMAGES = 4


class ProbeClassifier(nn.Module):
    """A tiny classifier with the lsmia-bench contract: flatten -> 2 hidden blocks -> head.

    It accepts inputs of any shape (images included) and is used only for the checks.
    """

    def __init__(self, in_features: int = 16, hidden: int = 8, num_classes: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
        )
        self.head = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden
        self.hidden_layers = ["body.2", "body.4"]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def probe_batch(num_classes: int = 4, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Small grey images (B, 1, 4, 4) in [0, 1] and labels covering every class."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(batch_size, 1, 4, 4, generator=generator)
    targets = torch.arange(batch_size) % num_classes
    return inputs, targets


#: Off inside :func:`probes_skipped`: :func:`check_component` then returns at once.
_PROBING = contextvars.ContextVar("lsmia_probing", default=True)


@contextlib.contextmanager
def probes_skipped() -> Iterator[None]:
    """Within: components are built (names and values checked) but not run on a probe.

    For a run whose every trial is cached, which runs no component: the probes cost seconds
    (torch's optimizer imports its compiler on first use) and would check nothing that runs."""
    token = _PROBING.set(False)
    try:
        yield
    finally:
        _PROBING.reset(token)


#: What a training may give ``prepare_training`` besides the model, optimiser and batches:
#: per-example access (``setup.examples``) and the public split (``setup.public``).
TRAINING_EXTRAS: frozenset[str] = frozenset({"examples", "public"})
_EXTRA_NAMES = {"examples": "per-example access to the training data (setup.examples)",
                "public": "public split (setup.public)"}

#: A suite's own probe: a fresh tiny classifier of its architecture, inputs, labels, classes
#: and, optionally fifth, which of :data:`TRAINING_EXTRAS` its training gives (default: all).
Probe = Callable[[], tuple[Any, ...]]


def check_component(component: Any, field: str, name: str, probe: Probe | None = None) -> None:
    """Run the checks that apply to ``component``: :func:`check_defense` for a defense,
    :func:`check_attack` for an attack.

    ``probe`` lets a pipeline check against its own architecture and inputs, so that
    hyper-parameters naming its layers (e.g. BiDO's ``layers``) are checked against the real
    names and an attack runs on the suite's kind of input (the toy suite's 2-D points).
    """
    from lsmia_bench.attacks.base import Attack
    from lsmia_bench.defenses.base import Defense

    if isinstance(component, Attack):
        check_threat_model(component, field, name)
    if not _PROBING.get():
        return
    if isinstance(component, Attack):
        if probe is None:
            check_attack(component, field, name)
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, inputs, _, num_classes, *_ = probe()
        check_attack(component, field, name, model, tuple(inputs.shape[1:]), num_classes)
        return
    if not isinstance(component, Defense):
        return
    if probe is None:
        check_defense(component, field, name)
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, inputs, targets, num_classes, *extras = probe()
    check_defense(component, field, name, model, (inputs, targets), num_classes,
                  extras=frozenset(extras[0]) if extras else TRAINING_EXTRAS)


def check_defense(
    defense: Any,
    field: str,
    name: str,
    model: nn.Module | None = None,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    num_classes: int = 4,
    hooks: bool | None = None,
    extras: frozenset[str] = TRAINING_EXTRAS,
) -> None:
    """Raise a UserError naming ``name`` unless ``defense`` keeps the defense interface.

    Checks: the interface methods are callable and none is shadowed by a misspelt one;
    ``at_epoch`` returns a defense of the same class for every epoch of a short schedule, with
    finite numbers under ``schedule_series``; ``wrap_model`` returns a module whose
    ``forward`` gives (B, C) logits in train and eval mode; ``feature_layers`` names existing
    submodules; ``loss`` returns a finite scalar tensor that depends on the model's parameters
    and back-propagates. A suite may pass its own ``model`` and ``batch`` (with
    ``num_classes``); by default a :class:`ProbeClassifier` and :func:`probe_batch` are used.

    With ``hooks`` (default: when ``model`` is the suite's own, not a :class:`ProbeClassifier`)
    the set-up hooks run around that step as a training runs them (:func:`probe_setup`):
    ``prepare_training`` must return a :class:`TrainingSetup` whose model is a module,
    optimiser a torch optimiser and batches a callable giving (inputs, targets); the set-up
    gives only the ``extras`` the suite's training gives, and a ``prepare_training`` that
    fails without one it needs (DP-SGD's per-example access, TL-DMI's public split) but works
    with all of them is refused as not fitting the suite, not as broken; the step uses
    the returned model, the first of its batches, its ``state`` as ``LossInputs.state`` and its
    optimiser's ``step``; ``end_training`` must return a mapping of names to finite numbers,
    and the wrapped model must still give logits after it. They are not run on the generic
    probe by default: a set-up may depend on the architecture (TL-DMI's freeze point is known
    per architecture), which only the suite's own model shows.

    The probe runs on a deep copy of ``defense`` (where one can be made), so the object the
    caller keeps is not changed by it; the global random state (torch's CPU generator,
    ``random``'s and NumPy's) is left untouched.
    """
    _check_methods(type(defense), field, name)
    if hooks is None:
        hooks = model is not None and not isinstance(model, ProbeClassifier)
    with _random_state_kept():
        torch.manual_seed(0)
        if model is None:
            model, num_classes = ProbeClassifier(), 4
        inputs, targets = batch if batch is not None else probe_batch(num_classes)
        _run_once(_probe_copy(defense), model, inputs, targets, num_classes, field, name, hooks,
                  extras)


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """Torch's CPU generator, ``random``'s and NumPy's global state restored on exit (a
    plug-in's hooks may draw from any of them)."""
    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _probe_copy(defense: Any) -> Any:
    """A deep copy of ``defense`` for the probe, so that a plug-in keeping something on itself
    (against the frozen-model contract) is not changed by the probe; the object itself where
    it cannot be copied."""
    try:
        return copy.deepcopy(defense)
    except Exception:  # an uncopyable attribute is the plug-in's business, not a broken one
        return defense


def probe_setup(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                num_classes: int, extras: frozenset[str] = TRAINING_EXTRAS) -> Any:
    """The :class:`TrainingSetup` a defense's ``prepare_training`` gets in the check: ``model``
    trained by SGD (:class:`MomentumSGD`, which spares the driver torch._dynamo's
    import) on one batch (``inputs``, ``targets``) per epoch, per-example access to
    that batch, its first :data:`PROBE_PUBLIC_IMAGES` examples as the public split and the
    batch as the test split, on the CPU with seed 0; per-example access and the public split
    only if named in ``extras``."""
    from lsmia_bench.benchmark.optimizers import MomentumSGD
    from lsmia_bench.defenses.base import PublicData, TrainingSetup

    count = min(PROBE_PUBLIC_IMAGES, len(targets))
    return TrainingSetup(
        model=model, optimizer=MomentumSGD(model.parameters(), lr=0.01),
        batches=lambda: [(inputs, targets)], epochs=PROBE_SETUP_EPOCHS,
        batch_size=len(targets), train_size=len(targets), num_classes=num_classes,
        device=torch.device("cpu"), seed=0,
        examples=(lambda index: (inputs[index], targets[index])) if "examples" in extras
        else None,
        public=PublicData(inputs[:count].clone(), targets[:count].clone(), num_classes)
        if "public" in extras else None,
        test=(inputs, targets))


def _fail(field: str, name: str, problem: str, fix: str) -> UserError:
    return UserError(field, name, fix, problem=f"broken defense: {problem}")


def _check_methods(cls: type, field: str, name: str) -> None:
    for method in DEFENSE_METHODS:
        if not callable(getattr(cls, method, None)):
            raise _fail(field, name, f"{method} is not a method",
                        f"Define def {method}(self, ...) as in defenses/base.py.")
    own = [attr for attr, value in vars(cls).items()
           if callable(value) and not attr.startswith("_") and attr not in DEFENSE_METHODS]
    for attr in own:
        close = difflib.get_close_matches(attr, DEFENSE_METHODS, n=1, cutoff=0.75)
        if close and close[0] not in vars(cls):
            raise _fail(field, name, f"defines {attr!r} but not {close[0]!r}, so the base "
                        f"class's {close[0]} would be used", f"Rename {attr!r} to {close[0]!r}.")


def _run_once(defense: Any, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
              num_classes: int, field: str, name: str, hooks: bool = False,
              extras: frozenset[str] = TRAINING_EXTRAS) -> None:
    """One training step as :func:`benchmark.training.train_classifier` takes it, between the
    set-up hooks when ``hooks``: the names of each step below are the ones an error gives."""
    from lsmia_bench.benchmark.training import capture_features
    from lsmia_bench.defenses.base import LossInputs

    step = "wrap_model()"
    try:
        wrapped = defense.wrap_model(model)
        if not isinstance(wrapped, nn.Module):
            raise _fail(field, name, f"wrap_model() returned {type(wrapped).__name__}",
                        "Return a torch.nn.Module (the model itself if nothing changes).")
        step = "feature_layers()"
        layers = _check_layers(defense, wrapped, field, name)
        trained, state, optimizer, setup = wrapped, {}, None, None
        if hooks:
            step = "prepare_training()"
            try:
                setup = defense.prepare_training(probe_setup(wrapped, inputs, targets,
                                                             num_classes, extras))
            except Exception as exc:
                _refuse_unfitting(defense, wrapped, (inputs, targets), num_classes, extras, exc,
                                  field, name)
                raise
            _check_setup(setup, field, name)
            trained, state, optimizer = setup.model, setup.state, setup.optimizer
            if trained is not wrapped:  # the loop captures features of the model it trains
                step = "feature_layers()"
                layers = _check_layers(defense, trained, field, name)
            step = "setup.batches()"
            inputs, targets = _first_batch(setup, field, name)
        trained.train()
        with capture_features(trained, list(layers)) as features:
            step = "the wrapped model's forward()"
            logits = trained(inputs)
            _check_logits(logits, len(targets), num_classes, field, name, "train")
            step = "at_epoch()"
            current = _check_schedule(defense, field, name)
            step = "loss()"
            loss = current.loss(LossInputs(
                logits=logits, targets=targets, inputs=inputs, num_classes=num_classes,
                progress=0.0, model=trained, features=dict(features), state=state))
        _check_loss(loss, field, name)
        step = "loss.backward()"
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            # Opacus's per-example hooks (DP-SGD) warn on every model whose inputs need no
            # gradient, as in every training; said here, it would seem to be the check's.
            warnings.filterwarnings("ignore", message="Full backward hook is firing",
                                    category=UserWarning)
            loss.backward()
        if setup is not None:
            step = "the optimiser's step() (the one prepare_training() returned)"
            optimizer.step()
            step = "end_training()"
            _check_metrics(defense.end_training(setup), field, name)
        wrapped.eval()  # the model the pipeline evaluates and records
        step = "the wrapped model's forward() in eval mode"
        with torch.no_grad():
            _check_logits(wrapped(inputs), len(targets), num_classes, field, name, "eval")
    except UserError:
        raise
    except Exception as exc:  # a plug-in may fail in any way
        raise _fail(field, name, f"{step} raised {type(exc).__name__}: {exc}",
                    "Fix the plug-in; it was run once on a tiny probe model and batch.") from None


def _refuse_unfitting(defense: Any, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
                      num_classes: int, extras: frozenset[str], error: Exception, field: str,
                      name: str) -> None:
    """Raise a UserError saying the defense needs what this suite's training does not give,
    when its ``prepare_training`` failed with the suite's ``extras`` and works with all of
    them (run again on copies); return otherwise (the failure is the plug-in's own)."""
    missing = sorted(TRAINING_EXTRAS - extras)

    def works(given: frozenset[str]) -> bool:
        try:
            _probe_copy(defense).prepare_training(probe_setup(copy.deepcopy(model), *batch,
                                                              num_classes, given))
        except Exception:
            return False
        return True

    if not missing or not works(TRAINING_EXTRAS):
        return
    # Name what it needs: the one missing extra that suffices, else all that are missing.
    needed = [extra for extra in missing if works(extras | {extra})] or missing
    needs = " or ".join(_EXTRA_NAMES[extra] for extra in needed)
    raise UserError(field, name, "Remove it from this suite, or run it on a suite whose "
                    "training gives that (docs/extending.md: what each pipeline gives).",
                    problem=f"defense does not fit this suite: its training gives no {needs}, "
                    f"and prepare_training() needs it ({type(error).__name__}: {error})")


def _check_layers(defense: Any, model: nn.Module, field: str, name: str) -> list[str]:
    layers = defense.feature_layers(model)
    if not isinstance(layers, list | tuple) or not all(isinstance(n, str) for n in layers):
        raise _fail(field, name, f"feature_layers() returned {layers!r}",
                    "Return a list of submodule names (model.named_modules()).")
    known = dict(model.named_modules())
    missing = [n for n in layers if n not in known]
    if missing:
        raise _fail(field, name, f"feature_layers() names unknown submodules {missing}",
                    f"Use names from model.named_modules(), e.g. {list(known)[1:6]}.")
    return list(layers)


def _check_setup(setup: Any, field: str, name: str) -> None:
    from lsmia_bench.defenses.base import TrainingSetup

    fix = ("Return the set-up it got, or a copy: dataclasses.replace(setup, model=..., "
           "optimizer=..., batches=...).")
    if not isinstance(setup, TrainingSetup):
        raise _fail(field, name, f"prepare_training() returned {type(setup).__name__}, not a "
                    "TrainingSetup", fix)
    for what, kind, shown in (("model", nn.Module, "torch.nn.Module"),
                              ("optimizer", torch.optim.Optimizer, "torch.optim.Optimizer"),
                              ("state", dict, "dict")):
        value = getattr(setup, what)
        if not isinstance(value, kind):
            raise _fail(field, name, f"prepare_training() returned a set-up whose {what} is a "
                        f"{type(value).__name__}, not a {shown}", fix)
    if not callable(setup.batches):
        raise _fail(field, name, "prepare_training() returned a set-up whose batches is a "
                    f"{type(setup.batches).__name__}, not a callable",
                    "Set batches to a function that returns one epoch's (inputs, targets).")


def _first_batch(setup: Any, field: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first (inputs, targets) of one epoch of ``setup.batches()``."""
    first = next(iter(setup.batches()), None)
    if not (isinstance(first, tuple | list) and len(first) == 2
            and all(isinstance(t, torch.Tensor) for t in first) and len(first[1]) > 0):
        what = "no batch" if first is None else f"{type(first).__name__} {first!r:.60}"
        raise _fail(field, name, f"setup.batches() of the set-up prepare_training() returned "
                    f"gave {what}, not a pair of tensors (inputs, targets)",
                    "Yield (inputs, targets) tensor pairs from batches().")
    return first[0], first[1]


def _check_metrics(metrics: Any, field: str, name: str) -> None:
    if not isinstance(metrics, Mapping):
        raise _fail(field, name, f"end_training() returned {type(metrics).__name__}, not a "
                    "dict", "Return a dict of metric names to numbers ({} for none).")
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise _fail(field, name, f"end_training() returned the key {key!r}, not a name",
                        "Name each metric with a str.")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                not math.isfinite(value):
            raise _fail(field, name, f"end_training() returned {key!r}: {value!r}, not a "
                        "finite number", "Return finite floats (or ints), e.g. float(x) of a "
                        "0-dim tensor; guard divisions and logs.")


def _check_schedule(defense: Any, field: str, name: str) -> Any:
    """Call ``at_epoch`` for every epoch of a short probe run, as the training loops do; check
    that each returns a defense of the same class whose ``schedule_series`` values are finite
    numbers. Returns the first epoch's defense (the one the loss is checked with)."""
    epochs = []
    for epoch in range(PROBE_EPOCHS):
        current = defense.at_epoch(epoch, PROBE_EPOCHS)
        if not isinstance(current, type(defense)):
            raise _fail(field, name, f"at_epoch({epoch}, {PROBE_EPOCHS}) returned "
                        f"{type(current).__name__}, not a {type(defense).__name__}",
                        "Return self, or a copy such as self.model_copy(update={...}).")
        for series, hyper in type(defense).schedule_series.items():
            value = getattr(current, hyper, None)
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not math.isfinite(value):
                raise _fail(field, name, f"schedule_series[{series!r}] names {hyper!r}, which "
                            f"is {value!r} at epoch {epoch}, not a finite number",
                            "Name numeric hyper-parameters (fields) in schedule_series.")
        epochs.append(current)
    return epochs[0]


def _check_logits(logits: Any, batch_size: int, num_classes: int, field: str, name: str,
                  mode: str) -> None:
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (batch_size, num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise _fail(field, name, f"the wrapped model returned {shape} in {mode} mode, not "
                    f"logits of shape {(batch_size, num_classes)}",
                    "forward(x) of the wrapped model must return logits (B, C).")


def _check_loss(loss: Any, field: str, name: str) -> None:
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        what = (f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor)
                else f"a {type(loss).__name__}")
        raise _fail(field, name, f"loss() returned {what}, not a scalar tensor",
                    "Return a 0-dim torch.Tensor, e.g. the batch mean of a per-sample loss.")
    if not math.isfinite(loss.item()):
        raise _fail(field, name, f"loss() is {loss.item()} on a probe batch",
                    "Make the loss finite (check logs of zero, divisions, large exponents).")
    if not loss.requires_grad:
        raise _fail(field, name, "loss() does not depend on the model's parameters",
                    "Compute the loss from batch.logits or batch.features without detaching.")


def check_attack(
    attack: Any,
    field: str,
    name: str,
    target: nn.Module | None = None,
    input_shape: tuple[int, ...] = (1, 4, 4),
    num_classes: int = 4,
) -> None:
    """Raise a UserError naming ``name`` unless ``attack`` keeps the attack interface.

    The attack's class ``probe_params`` are merged over its configured hyper-parameters (a run
    of a step or two), and it is run once against ``target`` (default: a
    :class:`ProbeClassifier` on ``input_shape`` images) for two classes, with a tiny generator
    prior (generator and critic) when it ``needs_prior``. Checks on the returned
    :class:`AttackOutput`: reconstructions are a finite tensor (N, *input_shape) with N >= 1,
    in [0, 1] for image inputs (C, H, W); labels are N int class ids among those attacked;
    the trace is a dict. The global random state is left untouched.
    """
    from lsmia_bench.kernel.attack_output import AttackOutput

    cls = type(attack)
    probe_params = dict(getattr(cls, "probe_params", {}) or {})
    try:
        quick = cls(**(attack.model_dump() | probe_params))
    except Exception as exc:  # pydantic refuses a probe value the fields forbid
        raise _attack_fail(field, name, f"probe_params {probe_params} are refused "
                           f"({type(exc).__name__}: {exc})".replace("\n", " "),
                           "Give probe_params values the fields allow.") from None
    classes = [0, num_classes - 1]
    step = "building the probe"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            if target is None:
                features = math.prod(input_shape)
                target = ProbeClassifier(in_features=features, num_classes=num_classes)
            target.input_shape = tuple(input_shape)  # the public hint input-space attacks read
            target.eval()
            prior = probe_prior(input_shape) if quick.needs_prior else None
            step = "run()"
            output = quick.run(target, classes, prior)
        except Exception as exc:  # a plug-in may fail in any way
            raise _attack_fail(field, name, f"{step} raised {type(exc).__name__}: {exc}",
                               "Fix the plug-in; it was run once on a tiny probe target "
                               f"with {probe_params or 'its configured budget'}.") from None
    if not isinstance(output, AttackOutput):
        raise _attack_fail(field, name, f"run() returned {type(output).__name__}",
                           "Return lsmia_bench.kernel.attack_output.AttackOutput(...).")
    _check_attack_output(output, tuple(input_shape), classes, field, name)


def probe_prior(input_shape: tuple[int, ...], latent_dim: int = 4) -> nn.Module:
    """A tiny untrained generator prior with a WGAN critic, for the attack check only."""
    from lsmia_bench.attacks.priors.base import GeneratorPrior

    features = math.prod(input_shape)
    generator = nn.Sequential(nn.Linear(latent_dim, features), nn.Sigmoid(),
                              nn.Unflatten(1, tuple(input_shape)))
    critic = nn.Sequential(nn.Flatten(), nn.Linear(features, 1))
    size = tuple(input_shape[1:]) if len(input_shape) == 3 else None
    channels = input_shape[0] if len(input_shape) == 3 else None
    return GeneratorPrior(generator, latent_dim, image_size=size, channels=channels,
                          discriminator=critic, discriminator_kind="wgan")


def check_threat_model(attack: Any, field: str, name: str) -> None:
    """The attack's declared ``threat_model`` is one the leaderboard groups columns by (a
    plain class attribute, so the value a plug-in writes is not checked by pydantic)."""
    from lsmia_bench.kernel.component import THREAT_MODELS

    declared = getattr(type(attack), "threat_model", None)
    if declared not in THREAT_MODELS:
        raise _attack_fail(field, name, f"threat_model {declared!r} is not one of "
                           f"{', '.join(THREAT_MODELS)}",
                           f"Declare threat_model: ClassVar[ThreatModel] = one of "
                           f"{', '.join(repr(t) for t in THREAT_MODELS)}.")


def _attack_fail(field: str, name: str, problem: str, fix: str) -> UserError:
    return UserError(field, name, fix, problem=f"broken attack: {problem}")


def _check_attack_output(output: Any, input_shape: tuple[int, ...], classes: list[int],
                         field: str, name: str) -> None:
    recon, labels = output.reconstructions, output.labels
    if not isinstance(recon, torch.Tensor) or recon.ndim < 1 or len(recon) == 0 \
            or tuple(recon.shape[1:]) != input_shape:
        shape = tuple(recon.shape) if isinstance(recon, torch.Tensor) else type(recon).__name__
        raise _attack_fail(field, name, f"reconstructions are {shape}, not (N, "
                           f"{', '.join(map(str, input_shape))}) with N >= 1",
                           "Return the final samples in the target's input space.")
    if not torch.isfinite(recon).all():
        raise _attack_fail(field, name, "reconstructions hold NaN or infinite values",
                           "Clamp or guard the optimisation (check divisions, logs).")
    if len(input_shape) == 3 and (recon.min() < 0 or recon.max() > 1):
        raise _attack_fail(field, name, f"reconstructions span [{recon.min().item():.3g}, "
                           f"{recon.max().item():.3g}], outside the images' [0, 1]",
                           "Clamp the final samples to [0, 1] (e.g. tensor.clamp(0, 1)).")
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (len(recon),) \
            or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise _attack_fail(field, name, f"labels are {shape}, not {len(recon)} integer class "
                           "ids (one per reconstruction)",
                           "Return labels as an int64 tensor of shape (N,).")
    unknown = sorted(set(labels.tolist()) - set(classes))
    if unknown:
        raise _attack_fail(field, name, f"labels {unknown} were not attacked (asked for "
                           f"{classes})", "Label each reconstruction with its attacked class.")
    if not isinstance(output.trace, dict):
        raise _attack_fail(field, name, f"trace is a {type(output.trace).__name__}",
                           "Return the optimisation trace as a dict.")
