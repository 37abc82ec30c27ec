"""The lowering registry: one registered place per layer kind per framework.

Each framework's ``lowerings.py`` makes a :class:`Registry` and registers one
:class:`Lowering` subclass per layer kind, as onnx2torch registers one converter per ONNX op.
A lowering says what its framework knows about its kind:

* :meth:`Lowering.params`: the **parameter map** of a spec (:mod:`xinit.parammap`): where
  each neutral parameter lives in the native module, under which name and layout. Pure data,
  computed without the framework, so ``xinit.port`` and the defaults catalogue read it too.
* :meth:`Lowering.build`: the native module (imports the framework when called).
* the framework's own defaults for the kind (:meth:`Lowering.default_rule`,
  :meth:`~Lowering.default_missing`, :meth:`~Lowering.default_spec`,
  :meth:`~Lowering.native_default`), which the defaults catalogue and ``Default`` read.

Building, state, transfer, port, apply and parity all read native names and layouts from
these maps and from nowhere else. Reading a native model (``xinit.apply``) is the inverse:
:meth:`Registry.kind_of` maps a native layer class to its kind through :meth:`Lowering.natives`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from xinit import kinds
from xinit import layers as _layers  # noqa: F401 - registers the spec kinds in the table
from xinit.errors import DefaultsError
from xinit.fans import Fans
from xinit.initializers import Initializer
from xinit.parammap import Extras, Leaf, ParamMap, check_cover

Layout = Callable[[str, int], "tuple[int, ...] | None"]
# (initializer, fans the framework uses or None, its rule in words, where it lives)
DefaultRule = tuple[Initializer, "Fans | None", str, str]


def no_layout(role: str, ndim: int) -> None:
    """The neutral (PyTorch) layout: no permutation for any role."""
    return None


class Lowering:
    """How layer kind ``kind`` becomes a native module, and where its parameters land.

    Subclasses set ``kind`` (by registering) and usually only :meth:`build`. ``leaves`` maps a
    neutral leaf name to the framework's, where they differ (None: the framework keeps no
    counterpart); each leaf is laid out by the framework's layout of its fan role. Override
    :meth:`params` for anything else (one neutral tensor as several native ones).
    """

    kind: ClassVar[str] = ""
    leaves: ClassVar[Mapping[str, str | None]] = {}
    # build(spec, device, initial=...) accepted: ``initial(native leaf, shape)`` gives a
    # parameter's drawn value (or None) while the module is made (backends/common/building.py)
    takes_initial: ClassVar[bool] = False
    # How the native module holds the activations it takes and returns, for frameworks whose
    # images are channel-last (Flax): "channels" (axis 1 moved last: convs, pools, norms over
    # channels), "sequence" or "neutral" (the neutral array as it is: (N, L, D) sequences,
    # reshapes), "any" (element-wise: the input's). The containers convert between them.
    layout: ClassVar[str] = "any"

    def __init__(self, registry: Registry):
        self.registry = registry

    def params(self, spec) -> ParamMap:
        """The parameter map of layer spec ``spec`` (every parameter and buffer)."""
        out = {}
        for p in spec.params():
            native = self.leaves.get(p.name, p.name)
            perm = self.registry.layout(p.role, len(p.shape))
            out[p.name] = () if native is None else (Leaf(native, perm),)
        return out

    def extras(self, spec) -> Extras:
        """Native tensors of the layer that are no leaf of :meth:`params`, by native name
        (:class:`xinit.parammap.Extra`: second names, frozen constants); usually none."""
        return {}

    def build(self, spec, device: str) -> Any:
        """The native module for ``spec`` on ``device`` (values are drawn afterwards)."""
        raise TypeError(
            f"the {self.registry.framework} adapter reads {self.kind!r} layers of native models "
            "but cannot build one from a spec"
        )

    def layout_for(self, spec) -> str:
        """The activation layout of the module built for ``spec`` (see ``layout``)."""
        return self.layout

    def natives(self) -> tuple[type, ...]:
        """Native layer classes that are this kind (for reading models xinit did not build)."""
        return ()

    def read(self, module: Any) -> Any:
        """The layer spec of a native layer of this kind (the inverse of :meth:`build`), so
        that a model xinit did not build is read through the same parameter maps; None when
        the kind has no spec. Read specs carry what decides the parameters (channels,
        kernel, groups, bias, eps, momentum); stride and padding where they mean what
        PyTorch's do."""
        return None

    # ---- the framework's own defaults for this kind (the defaults catalogue reads these) ----
    def default_rule(self, spec, param: str) -> DefaultRule | None:
        """(initializer, fans, rule in words, source) of ``param`` of the framework's own
        default layer for ``spec``: what its constructor draws, as an xinit initializer with
        the fans the framework itself uses. None: this lowering states no default rule."""
        return None

    def default_missing(self, spec) -> tuple[str, str] | None:
        """(note, source) when the framework has no default layer for ``spec`` (Paddle's
        RMSNorm, Flax's grouped ConvTranspose); None when it has one."""
        return None

    def default_spec(self, spec) -> Any:
        """The spec of the framework's own default layer for ``spec`` where it is not
        ``spec`` itself (Flax's recurrent cells: one bias per gate, their own layout)."""
        return spec

    def native_default(self, spec, seed: int) -> Any:
        """The framework's own default layer for ``spec``, built with its own default init
        from ``seed`` (measured by ``tests/defaults/test_defaults_measured.py``)."""
        raise DefaultsError(
            f"the {self.registry.framework} lowering of {self.kind!r} names no default layer "
            "of the framework (Lowering.native_default)"
        )

    def neutral_leaf(self, native: str) -> str:
        """The neutral name of a native leaf of this kind (``kernel`` -> ``weight``)."""
        for neutral, name in self.leaves.items():
            if name == native:
                return neutral
        return native


class Registry:
    """The lowerings of one framework, by layer kind, with the framework's role layout."""

    def __init__(self, framework: str, layout: Layout = no_layout):
        self.framework = framework
        self.layout = layout
        self._by_kind: dict[str, Lowering] = {}
        self._classes: dict[type, str] | None = None

    def register(self, kind: str) -> Callable[[type[Lowering]], type[Lowering]]:
        """Class decorator: ``@REGISTRY.register("conv") class Conv(Lowering): ...``."""
        if not kinds.is_known(kind):
            raise KeyError(
                f"{self.framework}: cannot lower unknown layer kind {kind!r}; register the kind "
                "first (xinit.kinds.register, or @kinds.layer on its spec)"
            )

        def decorate(cls: type[Lowering]) -> type[Lowering]:
            cls.kind = kind
            self._by_kind[kind] = cls(self)
            self._classes = None
            return cls

        return decorate

    def __contains__(self, kind: str) -> bool:
        return kind in self._by_kind

    def __getitem__(self, kind: str) -> Lowering:
        try:
            return self._by_kind[kind]
        except KeyError:
            raise TypeError(
                f"the {self.framework} adapter has no lowering for layer kind {kind!r} "
                f"(it lowers: {', '.join(sorted(self._by_kind))})"
            ) from None

    def param_map(self, spec) -> ParamMap:
        """The parameter map of layer spec ``spec``, computed once per spec and framework; a
        native layer's own tensors (``xinit.native.OwnTensors``: no kind) map as stored."""
        cache = spec.__dict__.setdefault("_xinit_maps", {})
        found = cache.get(self.framework)
        if found is None:
            own = getattr(spec, "leaf_map", None)
            pmap = own() if own is not None else self[spec.kind].params(spec)
            found = cache[self.framework] = self._checked(spec, pmap)
        return found

    def _checked(self, spec, pmap: ParamMap) -> ParamMap:
        """A lowering's map must cover each parameter of the spec exactly (caught once here,
        not as a wrong tensor later)."""
        where = f"{self.framework} lowering of {type(spec).__name__}"
        names = [p.name for p in spec.params()]
        if sorted(pmap) != sorted(names):
            raise TypeError(f"{where}: the parameter map has {sorted(pmap)}, the spec {names}")
        for p in spec.params():
            check_cover(f"{where}: {p.name}", pmap[p.name], p.shape)
        return pmap

    def extras(self, spec) -> Extras:
        """The extra native tensors of layer spec ``spec`` (see :meth:`Lowering.extras`); a
        native layer's own tensors have none."""
        return self[spec.kind].extras(spec) if spec.kind else {}

    def kind_of(self, module: Any) -> str:
        """The neutral kind of a native layer object ("" for a class no lowering claims): the
        most specific registered class in its MRO wins (ConvTranspose2d before _ConvNd)."""
        if self._classes is None:
            classes: dict[type, str] = {}
            for kind, lowering in self._by_kind.items():
                for cls in lowering.natives():
                    other = classes.setdefault(cls, kind)
                    if other != kind:
                        raise TypeError(
                            f"{self.framework}: native class {cls.__module__}.{cls.__qualname__} "
                            f"is claimed by the lowerings of both {other!r} and {kind!r}"
                        )
            self._classes = classes
        for cls in type(module).__mro__:
            kind = self._classes.get(cls)
            if kind is not None:
                return kind
        return ""

    def lowering_of(self, module: Any) -> Lowering | None:
        kind = self.kind_of(module)
        return self._by_kind.get(kind) if kind else None


def register_builders(registry: Registry, builders: Mapping[str, Callable[[Any], Any]]) -> None:
    """Register a build-only lowering for each ``kind: spec -> native module`` of
    ``builders`` (parameter-free layers: activations, flatten, dropout)."""
    for kind, make in builders.items():

        def build(self, spec, device, make=make):
            return make(spec)

        name = f"{kind.title().replace('_', '')}Lowering"
        registry.register(kind)(type(name, (Lowering,), {"build": build}))


def param_of(spec, name: str):
    """The :class:`~xinit.layers.ParamSpec` ``name`` of layer spec ``spec``."""
    for p in spec.params():
        if p.name == name:
            return p
    raise KeyError(f"{type(spec).__name__} has no parameter {name!r}")


BARE_PARAMETER = (
    "a bare learned tensor: the framework has no layer of its own for it, so no default",
    "(none: the model's own code initialises it)",
)


NO_LAYER_SCALE = (
    "no layer-scale layer of the framework's own (timm's LayerScale, ConvNeXt's layer_scale: "
    "the model's code sets gamma to init_values, 1e-5 in timm, 1e-6 in ConvNeXt)",
    "(none: timm/layers/layer_scale.py, torchvision/models/convnext.py set it)",
)


NEUTRAL = Registry("neutral")


def neutral_map(spec) -> ParamMap:
    """The neutral convention's map: every parameter under its own name and layout."""
    return {p.name: (Leaf(p.name),) for p in spec.params()}


__all__ = [
    "Lowering",
    "Registry",
    "no_layout",
    "neutral_map",
    "register_builders",
    "Layout",
    "DefaultRule",
    "param_of",
    "BARE_PARAMETER",
    "NO_LAYER_SCALE",
]
