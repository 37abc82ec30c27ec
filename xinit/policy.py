"""Declarative init policies: which parameters of which layers get which initializer.

A :class:`Policy` is an ordered list of :class:`Rule` objects. A rule selects layers by
neutral **kind** (``"conv"``, ``("conv", "conv_transpose")``, ...), by an ``fnmatch`` glob
on the dotted **layer path** (``"heads.hm.*"``), and parameters of those layers by **leaf
name** (``"weight"`` by default, ``"bias"``, ``"*"``), and gives each selected parameter an
initializer::

    Policy(
        Rule(KaimingNormal(mode="fan_out", nonlinearity="relu"), kind="conv"),
        Rule(Ones(), kind="batchnorm", bias=Zeros()),
        Rule(Zeros(), kind="batchnorm", path="layer*.*.bn*", last=True),  # zero-init residual
    )

Precedence (the whole of it): **rules apply in order and a later rule overrides an earlier
one for the same parameter**. Write the general rules first and the specific ones after,
as MMEngine's ``init_cfg`` does with ``override=dict(name=...)`` (a named override beats the
``layer=`` rule) and as a child module's ``init_cfg`` runs after its parent's. There is no
hidden specificity ranking: a kind-only rule written *after* a path rule wins. Within one
rule, ``bias=`` beats ``param=`` for the ``bias`` leaf. Parameters no rule selects keep their
initializer (the spec's own in :func:`xinit.build`; the framework's in :func:`xinit.apply`)
and are reported as unmatched; ``strict`` makes that an error.

Everything here is framework-neutral: the same policy drives ``xinit.build(spec, backend,
policy=...)``, ``xinit.apply(policy, native_module)`` and ``xinit summary``.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from . import kinds
from .blocks import join
from .errors import XinitError
from .initializers import Constant, Initializer
from .layers import ParamSpec


def __getattr__(name: str):
    """``KINDS``: the kinds a rule may name, read live from :mod:`xinit.kinds` (the table)."""
    if name == "KINDS":
        return kinds.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PolicyError(XinitError, ValueError):
    """A rule that cannot be used, or (strict mode) a parameter or glob left unmatched."""


class PolicyWarning(UserWarning):
    """A rule that selects nothing (a glob or a parameter name that matches no parameter)."""


def _tuple_of_str(value, what: str, empty_ok: bool = False) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = (value,) if isinstance(value, str) else tuple(value)
    if not items or not all(isinstance(v, str) and (v or empty_ok) for v in items):
        raise PolicyError(f"{what} must be a non-empty string or tuple of strings; got {value!r}")
    return items


def _as_init(value, what: str) -> Initializer | None:
    if value is None or isinstance(value, Initializer):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Constant(float(value))
    raise PolicyError(f"{what} must be an xinit initializer or a number; got {value!r}")


@dataclass(frozen=True, init=False)
class Rule:
    """Give ``init`` to parameter(s) ``param`` of the layers matching ``kind`` and ``path``.

    * ``init``: an :mod:`xinit.init` initializer, or a number (a constant).
    * ``kind``: a neutral layer kind or a tuple of them (None: any kind, even layers xinit does
      not know, e.g. a native model's custom module).
    * ``path``: an ``fnmatch`` glob (or tuple of globs) on the dotted *layer* path, e.g.
      ``"fc"``, ``"layer*.*.bn*"``, ``"heads.hm.*"``; ``*`` crosses dots; ``""`` is the root
      module (its own parameters, e.g. a ``cls_token``). None: every path.
    * ``param``: the leaf name(s) ``init`` applies to (globs allowed; ``"*"``: all). Default
      ``"weight"``, as MMEngine's initializers. A learned-parameter node's single parameter
      (``cls_token``: its leaf name is empty) answers to the node's own name, so
      ``param="cls_token"`` selects it whether it is a built node or a native model's
      top-level ``nn.Parameter``; ``path="cls_token", param="*"`` selects the node too.
    * ``bias``: an initializer (or number) for the ``bias`` leaf of the same layers, as
      MMEngine's ``bias=``; layers without a bias are simply skipped.
    * ``last``: select only the last matching layer (in registration order) under each parent
      module: the last BN of each residual branch, the final conv of each head.
    * ``label``: a name for reports and errors (default: the rule's own repr).
    """

    init: Initializer
    kind: tuple[str, ...] | None = None
    path: tuple[str, ...] | None = None
    param: tuple[str, ...] = ("weight",)
    bias: Initializer | None = None
    last: bool = False
    label: str = ""

    def __init__(
        self,
        init: Initializer | float,
        *,
        kind: str | Iterable[str] | None = None,
        path: str | Iterable[str] | None = None,
        param: str | Iterable[str] = "weight",
        bias: Initializer | float | None = None,
        last: bool = False,
        label: str = "",
    ):
        s = object.__setattr__
        s(self, "label", str(label))
        s(self, "last", bool(last))
        s(self, "kind", _tuple_of_str(kind, "Rule.kind"))
        s(self, "path", _tuple_of_str(path, "Rule.path", empty_ok=True))  # "": the root
        s(self, "param", _tuple_of_str(param, "Rule.param"))
        s(self, "init", _as_init(init, "Rule.init"))
        s(self, "bias", _as_init(bias, "Rule.bias"))
        if self.init is None:
            raise PolicyError(f"{self}: init is required")
        known = []
        for k in self.kind or ():
            try:
                known.append(kinds.get(k).name)  # aliases (``bn``) name their kind
            except KeyError as err:
                raise PolicyError(f"{self}: {err.args[0]}") from None
        if self.kind is not None:
            s(self, "kind", tuple(known))

    def __str__(self) -> str:
        if self.label:
            return self.label
        parts = [str(self.init)]
        if self.kind is not None:
            parts.append(f"kind={_short(self.kind)}")
        if self.path is not None:
            parts.append(f"path={_short(self.path)}")
        if self.param != ("weight",):
            parts.append(f"param={_short(self.param)}")
        if self.bias is not None:
            parts.append(f"bias={self.bias}")
        if self.last:
            parts.append("last=True")
        return f"Rule({', '.join(parts)})"

    # ---- matching -------------------------------------------------------------------------
    def selects_layer(self, layer_path: str, kind: str) -> bool:
        if self.kind is not None and kind not in self.kind:
            return False
        return self.path is None or any(fnmatch.fnmatchcase(layer_path, g) for g in self.path)

    def init_for(self, leaf: str) -> Initializer | None:
        """The initializer this rule gives leaf ``leaf`` of a selected layer (None: none)."""
        if self.bias is not None and leaf == "bias":
            return self.bias
        if any(fnmatch.fnmatchcase(leaf, p) for p in self.param):
            return self.init
        return None


def _short(items: tuple[str, ...]) -> str:
    return repr(items[0]) if len(items) == 1 else repr(items)


def split_path(path: str) -> tuple[str, str]:
    """``"layer1.0.conv1.weight"`` -> ``("layer1.0.conv1", "weight")``."""
    layer, _, leaf = path.rpartition(".")
    return layer, leaf


@dataclass(frozen=True)
class Match:
    """The rule (index and object) that set one parameter, and the initializer it gave."""

    index: int
    rule: Rule
    init: Initializer

    @property
    def text(self) -> str:
        return f"#{self.index} {self.rule}"


@dataclass(frozen=True)
class Plan:
    """What a policy does to a set of parameters: ``matched`` path -> :class:`Match`."""

    matched: dict[str, Match]
    unmatched: tuple[str, ...]
    unused_rules: tuple[int, ...]
    notes: tuple[str, ...] = field(default=())  # the warnings raised while planning
    skipped: tuple[str, ...] = field(default=())  # selected or not, left untouched
    dists: dict = field(default_factory=dict)  # path -> the matched initializer, resolved
    # path -> why the matched initializer has nothing for it (``Default`` on a tensor of a
    # class no framework layer is): left as it is, and said so
    left: dict = field(default_factory=dict)


class Policy:
    """An ordered list of :class:`Rule`; later rules override earlier ones (see module doc).

    ``Policy(rule, ...)`` or ``Policy([rule, ...])``. ``strict=True`` turns the warnings for
    rules that select nothing, and parameters no rule selects, into :class:`PolicyError`.
    ``policy + other`` appends ``other``'s rules (so they override).
    """

    def __init__(self, *rules: Rule | Iterable[Rule], strict: bool = False, name: str = ""):
        flat: list[Rule] = []
        for r in rules:
            if isinstance(r, Rule):
                flat.append(r)
            elif isinstance(r, Policy):
                flat.extend(r.rules)
            elif isinstance(r, Iterable) and not isinstance(r, (str, bytes)):
                flat.extend(r)
            else:
                raise PolicyError(f"Policy takes Rule objects; got {r!r}")
        for i, r in enumerate(flat):
            if not isinstance(r, Rule):
                raise PolicyError(f"Policy rule #{i} is not a Rule: {r!r}")
        self.rules: tuple[Rule, ...] = tuple(flat)
        self.strict = bool(strict)
        self.name = str(name)

    def __repr__(self) -> str:
        head = f"Policy {self.name!r}" if self.name else "Policy"
        body = "".join(f"\n  #{i} {r}" for i, r in enumerate(self.rules))
        return f"<{head}, {len(self.rules)} rules{body}>"

    def __add__(self, other: Policy | Rule) -> Policy:
        if isinstance(other, Rule):
            other = Policy(other)
        if not isinstance(other, Policy):
            return NotImplemented
        name = "+".join(n for n in (self.name, other.name) if n)
        return Policy(*self.rules, *other.rules, strict=self.strict or other.strict, name=name)

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self):
        return iter(self.rules)

    # ---- planning -----------------------------------------------------------------------
    def plan(
        self,
        params: Mapping[str, ParamSpec],
        *,
        strict: bool | None = None,
        skip: Collection[str] = (),
    ) -> Plan:
        """Decide, for every parameter in ``params`` (dotted path -> ParamSpec, in registration
        order), which rule sets it. Each chosen initializer is resolved once against the
        parameter's shape, role and fans, so one that cannot apply fails here, naming the rule
        and the parameter path. Paths in ``skip`` take part in matching (so a glob that only
        selects them is not "matching nothing") but are neither set nor reported unmatched."""
        strict = self.strict if strict is None else bool(strict)
        skip = frozenset(skip)
        layers: dict[str, tuple[str, list[str]]] = {}  # layer path -> (kind, leaf names)
        for path, ps in params.items():
            layer, leaf = ps.owner(path), ps.name
            entry = layers.setdefault(layer, (ps.kind, []))
            entry[1].append(leaf)
        matched: dict[str, Match] = {}
        notes: list[str] = []
        strict_notes: list[str] = []  # errors under strict, silent otherwise
        unused: list[int] = []
        for i, rule in enumerate(self.rules):
            chosen = [lp for lp, (kind, _) in layers.items() if rule.selects_layer(lp, kind)]
            if rule.last:
                by_parent: dict[str, str] = {}
                for lp in chosen:
                    by_parent[split_path(lp)[0]] = lp  # the last one under each parent wins
                keep = set(by_parent.values())
                chosen = [lp for lp in chosen if lp in keep]
            hits = 0
            for lp in chosen:
                for leaf in layers[lp][1]:
                    init = rule.init_for(leaf or split_path(lp)[1])  # "": the node's name
                    if init is not None:
                        matched[join(lp, leaf)] = Match(i, rule, init)
                        hits += 1
            if hits:
                continue
            unused.append(i)
            if rule.path is not None and not any(_glob_hits(rule, lp) for lp in layers):
                notes.append(
                    f"policy rule #{i} {rule}: path glob {_short(rule.path)} matches no layer "
                    f"(layers look like {_examples(layers)})"
                )
            elif chosen:
                leaves = sorted(
                    {leaf or split_path(lp)[1] for lp in chosen for leaf in layers[lp][1]}
                )
                notes.append(
                    f"policy rule #{i} {rule}: param {_short(rule.param)} matches no parameter "
                    f"of the {len(chosen)} layer(s) it selects (they have: {', '.join(leaves)})"
                )
            elif rule.path is not None:
                kinds = sorted({layers[lp][0] or "?" for lp in layers if _glob_hits(rule, lp)})
                notes.append(
                    f"policy rule #{i} {rule}: the layers its path glob matches have kinds "
                    f"{', '.join(kinds)}, not {_short(rule.kind or ())}"
                )
            else:  # selects by kind only: a preset may name kinds a model lacks, so strict only
                kinds = sorted({kind or "?" for kind, _ in layers.values()})
                strict_notes.append(
                    f"policy rule #{i} {rule}: no layer has kind {_short(rule.kind or ())} "
                    f"(the layers' kinds: {', '.join(kinds)})"
                )
        for path in skip:
            matched.pop(path, None)
        dists, left = {}, {}
        for path, m in matched.items():
            ps = params[path]
            no_default = getattr(m.init, "no_default", None)
            why = no_default(ps) if no_default is not None else ""
            if why:
                left[path] = why
                continue
            try:
                dists[path] = m.init.resolve(ps.shape, ps.role, ps.fans, param=ps)
            except (ValueError, TypeError) as err:
                raise PolicyError(
                    f"policy rule #{m.index} {m.rule}: {m.init} cannot initialise {path!r} "
                    f"(kind {ps.kind or '?'}, shape {tuple(ps.shape)}, role {ps.role}): {err}"
                ) from None
        unmatched = tuple(p for p in params if p not in matched and p not in skip)
        if strict:
            problems = notes + strict_notes
            if unmatched:
                shown = ", ".join(unmatched[:12]) + (" ..." if len(unmatched) > 12 else "")
                problems.append(
                    f"strict policy: {len(unmatched)} parameter(s) matched by no rule: {shown}"
                )
            if problems:
                raise PolicyError("; ".join(problems))
        for note in notes:
            warnings.warn(note, PolicyWarning, stacklevel=2)
        skipped = tuple(p for p in params if p in skip)
        return Plan(matched, unmatched, tuple(unused), tuple(notes), skipped, dists, left)

    def initializers(self, params: Mapping[str, ParamSpec]) -> dict[str, Initializer]:
        """Path -> initializer for the parameters this policy sets (the build seam)."""
        return {path: m.init for path, m in self.plan(params).matched.items()}

    def report(self, spec, *, strict: bool | None = None):
        """The :class:`xinit.apply.Report` of what ``xinit.build(spec, ..., policy=self)`` does:
        every trainable parameter with the rule that set it or, unmatched, the spec's own
        initializer."""
        from .blocks import param_specs
        from .report import Report, ReportEntry

        params = {p: s for p, s in param_specs(spec).items() if s.trainable}
        plan = self.plan(params, strict=strict)
        entries = []
        for path, ps in params.items():
            m = plan.matched.get(path)
            init = m.init if m else ps.init
            entries.append(
                ReportEntry(
                    path=path,
                    native=path,
                    kind=ps.kind,
                    module_type=type(ps.layer).__name__ if ps.layer is not None else "",
                    shape=tuple(ps.shape),
                    status="initialized" if m else "default",
                    rule=m.text if m else "",
                    rule_index=m.index if m else None,
                    initializer=str(init),
                    distribution=init.resolve(ps.shape, ps.role, ps.fans, param=ps).describe(),
                )
            )
        return Report(tuple(entries), self, plan.notes)


def _glob_hits(rule: Rule, layer_path: str) -> bool:
    return rule.path is not None and any(fnmatch.fnmatchcase(layer_path, g) for g in rule.path)


def _examples(layers: Mapping[str, object], n: int = 4) -> str:
    names = [repr(lp) for lp in layers if lp][:n]
    return ", ".join(names) + (", ..." if len(layers) > n else "") if names else "none"


__all__ = ["Rule", "Policy", "Plan", "Match", "PolicyError", "PolicyWarning"]
