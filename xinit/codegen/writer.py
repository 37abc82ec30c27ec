"""The exported file, written from the class plan: classes, ``__init__`` bodies, forward
statements, ``init_weights`` and the header. The framework's own code (how a layer is
constructed and called, the initialiser calls) comes from ``backends/<fw>/codegen.py``'s
``CODEGEN`` (a :class:`FrameworkCode`); this module only arranges it."""

from __future__ import annotations

from typing import Any

from ..blocks import Residual, Sequential
from ..graph import Graph
from ..layers import Layer
from .fields import Context, Fields, literal
from .layout import WIDTH, call_lines, statement
from .structure import ClassPlan, Code, ExportError, Planner, identifier, is_numbered


class FrameworkCode:
    """What a framework's ``codegen.py`` gives (its ``CODEGEN``): the emitters by layer kind
    and the few framework-wide forms. Subclasses fill the tables and override the forms."""

    framework = ""
    base = ""  # the base class of every class: ``nn.Module``
    call_name = "forward"
    emitters: dict[str, Any] = {}  # kind -> emitter (``module``, ``call``, ``apply``)

    def emitter(self, layer: Layer, path: str):
        found = self.emitters.get(layer.kind)
        if found is None:
            raise ExportError(
                f"{path or '<root>'}: the {self.framework} code export has no emitter for "
                f"layer kind {layer.kind!r} ({type(layer).__name__})"
            )
        return found

    def has_module(self, layer: Layer) -> bool:
        em = self.emitters.get(layer.kind)
        return em is not None and em.writes_module(layer)

    def imports(self, ctx: Context) -> None:
        """Add the framework's import lines to ``ctx``."""

    def step(self, call: str, ctx: Context | None = None) -> str | None:
        """A sequential container's step for a layer written as an expression on ``x``
        (None: the framework's container takes modules only); ``ctx`` takes the helpers it
        needs (None: only asking whether there is a form)."""
        return None

    def sequential(self, items: list[str], ctx: Context) -> str:
        raise NotImplementedError

    def step_keywords(self, wheres: list[str], ctx: Context) -> list[str]:
        """Keyword arguments of a sequential container whose steps are at the model's paths
        ``wheres`` (Flax's turns a step's input into the layout it takes); [] for none."""
        return []

    # the framework's list of layers (``nn.ModuleList``): the base of a graph whose layers are
    # numbered (PaddleOCR's ``conv_kxk`` list), reached as ``self[0]``; "" for none
    module_list = ""
    # what stands in the list for a step written as an expression (Flax's relu, a function),
    # so the layers keep their numbers; "" for none (the list holds every step)
    list_gap = ""
    calls_init_weights = True  # the model's __init__ ends with self.init_weights()
    no_child = "None"  # an absent optional child (a block without its shortcut)

    def init_args(
        self, args: list[str], flag: str | None, hints: list[str], root: bool, keywords=()
    ) -> str:
        """The constructor's parameter list after ``self`` (``keywords``: keyword-only
        parameters, annotated: Flax's per-instance ``kernel_init: nnx.Initializer``)."""
        text = ", ".join(f"{a}: {h}" for a, h in zip(args, hints))
        if flag:
            text += (", " if text else "") + f"{flag}: bool = False"
        if keywords:
            text += (", " if text else "") + ", ".join(["*", *keywords])
        return text

    def init_preamble(self, root: bool) -> list[str]:
        """Lines after ``super().__init__()`` (indented), before the children are made."""
        return []

    def class_call(self, name: str, values: list[str], flag: bool | None, flag_name) -> str:
        extra = [f"{flag_name}=True"] if flag else []
        return f"{name}({', '.join([*values, *extra])})"

    def init_weights(self, planner: Planner, writer: ModelWriter) -> list[str]:
        """The ``init_weights`` method's lines (indented one level), or [] for none."""
        return []

    def header(self, class_name: str, source: str, layout: str) -> list[str]:
        raise NotImplementedError


class ModelWriter:
    """Writes one file for a spec through a framework's :class:`FrameworkCode`."""

    def __init__(self, spec, code: FrameworkCode, class_name: str, policy=None):
        self.spec, self.code, self.policy = spec, code, policy
        self.ctx = Context()
        self.planner = Planner(spec, class_name, self._numbered_ok)
        self.class_name = class_name

    # ---- which numbered Sequentials stay the framework's own container -------------------
    def _numbered_ok(self, seq: Sequential) -> bool:
        for _, child in seq.steps:
            no_module = isinstance(child, Layer) and not self.code.has_module(child)
            if no_module and self.code.step("x") is None:
                return False
        return True

    # ---- expressions ----------------------------------------------------------------------
    def _fields(self, layer, plan: ClassPlan, path: str, in_forward=False) -> Fields:
        args = {}
        for f_name in self.planner.hole_names(layer):
            arg = plan.arg_of.get(f"{path}.{f_name}")
            if arg is not None:
                args[f_name] = f"self.{arg}" if in_forward else arg
        return Fields(layer, args, self.ctx, path, self.planner.path_of.get(id(layer), path))

    def construct(self, node, plan: ClassPlan, path: str) -> str | None:
        """The expression that makes child ``node`` (at ``path`` in ``plan``'s class)."""
        if isinstance(node, Layer):
            em = self.code.emitter(node, self.planner.path_of.get(id(node), path))
            if not em.writes_module(node):
                return None
            return em.module(self._fields(node, plan, path))
        child_plan = self.planner.of_node.get(id(node))
        if child_plan is None:  # an inline numbered Sequential
            items = [self._step(c, plan, f"{path}.{n}") for n, c in node.steps]
            keywords = self.code.step_keywords(self._step_paths(node, path), self.ctx)
            return self.code.sequential([*_runs(items), *keywords], self.ctx)
        values, flag = child_plan.call_args(node)
        template = plan.values[plan.instances.index(_template_of(plan))]
        keyword = self.planner.keyword_args(child_plan)
        codes = []
        for arg, v in zip(child_plan.args, values):
            hole = f"{path}.{arg}"
            code = plan.arg_of.get(hole) or literal(template.get(hole, v))
            codes.append(f"{arg}={code}" if arg in keyword else code)
        return self.code.class_call(child_plan.name, codes, flag, child_plan.flag)

    def _step(self, node, plan: ClassPlan, path: str) -> str:
        """A numbered Sequential's step: its constructor, or its expression on ``x``."""
        made = self.construct(node, plan, path)
        if made is not None:
            return made
        em = self.code.emitter(node, self.planner.path_of.get(id(node), path))
        if em.step is not None:
            return em.step(self._fields(node, plan, path))
        return self.code.step(em.call(self._fields(node, plan, path), ["x"]), self.ctx)

    def _step_paths(self, node: Sequential, path: str) -> list[str]:
        """The model path of each step of ``node`` (at ``path`` in its class)."""
        return [self.planner.path_of.get(id(c), _join_path(path, n)) for n, c in node.steps]

    def apply(self, name: str, node, plan: ClassPlan, args: list[str]) -> str:
        """The expression computing child ``name`` on the values ``args``."""
        attr = f"self[{name}]" if name.isdigit() else f"self.{name}"
        if isinstance(node, Layer):
            em = self.code.emitter(node, self.planner.path_of.get(id(node), name))
            f = self._fields(node, plan, name, in_forward=True)
            if not em.writes_module(node):
                self._stored.update(a.removeprefix("self.") for a in f.args.values())
                return em.call(f, args)
            if em.apply is not None:
                return em.apply(f, attr, args)
            return f"{attr}({', '.join(args)})"
        return f"{attr}({', '.join(args)})"

    # ---- classes --------------------------------------------------------------------------
    def _params(self, plan: ClassPlan, root: bool) -> str:
        """``self, in_channels: int, *, kernel_init: ...``: the constructor's parameters."""
        keyword = self.planner.keyword_args(plan)
        hints = _hints(plan)
        pairs = list(zip(plan.args, hints))
        args = [a for a, _ in pairs if a not in keyword]
        kws = [f"{a}: {h}" for a, h in pairs if a in keyword]
        text = self.code.init_args(args, plan.flag, hints[: len(args)], root, keywords=kws)
        return _join("self", text)

    def _is_steps(self, node) -> bool:
        """A numbered Sequential written as a class (the model itself): a subclass of the
        framework's sequential container, its steps given to ``super().__init__``."""
        return isinstance(node, Sequential) and is_numbered(node) and self._numbered_ok(node)

    def _steps_class(self, plan: ClassPlan) -> list[str]:
        node, root = _template_of(plan), plan is self.planner.root
        items = [self._step(c, plan, n) for n, c in node.steps]
        base = self.code.sequential(["x"], self.ctx).split("(")[0]
        params = self._params(plan, root)
        lines = [f"class {plan.name}({base}):", f'    """{_class_doc(node, plan)}"""', ""]
        lines += _def_lines("__init__", params)
        lines += self.code.init_preamble(root)
        keywords = self.code.step_keywords(self._step_paths(node, ""), self.ctx)
        lines += call_lines(
            "super().__init__", "(" + ", ".join([*_runs(items), *keywords]) + ")", 8
        )
        if root and self._init_lines and self.code.calls_init_weights:
            lines.append("        self.init_weights()")
        if root and self._init_lines:
            lines += ["", *self._init_lines]
        return lines

    def _is_list(self, node) -> bool:
        """A graph whose layers are numbered 0, 1, ... (PaddleOCR's ``conv_kxk`` list):
        written as a subclass of the framework's list of layers, when it has one."""
        if not isinstance(node, Graph) or not self.code.module_list:
            return False
        made = [n for n, c in node.children if not isinstance(c, Layer) or self.code.has_module(c)]
        if self.code.list_gap:  # the layers numbered, an expression's number kept (None)
            numbered = [n for n, _ in node.children if n.isdigit()]
            return (
                bool(made)
                and numbered == [str(i) for i in range(len(numbered))]
                and all(n.isdigit() for n in made)
            )
        return bool(made) and made == [str(i) for i in range(len(made))]

    def _list_class(self, plan: ClassPlan) -> list[str]:
        """``class ConvKxk(nn.ModuleList)``: its layers given to ``super().__init__`` as a
        list, the forward the graph's, each layer ``self[i]``."""
        node, root = _template_of(plan), plan is self.planner.root
        forward = self._forward(node, plan)
        gap = self.code.list_gap
        made = [self.construct(c, plan, n) for n, c in node.children if n.isdigit() or not gap]
        items = _runs([gap if m is None else m for m in made if m is not None or gap], gap)
        params = self._params(plan, root)
        lines = [f"class {plan.name}({self.code.module_list}):"]
        lines += [f'    """{_class_doc(node, plan)}"""', "", *_def_lines("__init__", params)]
        lines += self.code.init_preamble(root)
        if len(items) == 1 and items[0].startswith("*["):  # one layer n times: a comprehension
            lines += _comprehension_lines("super().__init__", items[0][2:-1], 8)
        else:
            lines += call_lines("super().__init__", f"([{', '.join(items)}])", 8)
        for arg in plan.args:
            if arg in self._stored:
                lines.append(f"        self.{arg} = {arg}")
        if root and self._init_lines and self.code.calls_init_weights:
            lines.append("        self.init_weights()")
        lines += ["", *_def_lines(self.code.call_name, ", ".join(["self", *self._inputs(node)]))]
        lines += forward
        return [*lines, "", *self._init_lines] if root and self._init_lines else lines

    def write_class(self, plan: ClassPlan) -> list[str]:
        node = _template_of(plan)
        if self._is_steps(node):
            return self._steps_class(plan)
        self._stored: set[str] = set()
        if self._is_list(node):
            return self._list_class(plan)
        forward = self._forward(node, plan)
        lines = [f"class {plan.name}({self.code.base}):"]
        doc = _class_doc(node, plan)
        lines.append(f'    """{doc}"""')
        lines.append("")
        root = plan is self.planner.root
        params = self._params(plan, root)
        lines += _def_lines("__init__", params)
        lines.append("        super().__init__()")
        lines += self.code.init_preamble(root)
        for arg in plan.args:
            if arg in self._stored:
                lines.append(f"        self.{arg} = {arg}")
        for name, child in node.children:
            attr = _attr(name, plan)
            expr = self.construct(child, plan, name)
            if expr is None:
                continue
            if plan.flag == name:
                lines.append(f"        self.{attr} = {self.code.no_child}")
                lines.append(f"        if {plan.flag}:")
                lines += call_lines(f"self.{attr} = ", expr, 12)
            else:
                lines += call_lines(f"self.{attr} = ", expr, 8)
        if root and self._init_lines and self.code.calls_init_weights:
            lines.append("        self.init_weights()")
        lines.append("")
        lines += _def_lines(self.code.call_name, ", ".join(["self", *self._inputs(node)]))
        lines += forward
        if plan is self.planner.root and self._init_lines:
            lines.append("")
            lines += self._init_lines
        return lines

    def _inputs(self, node) -> list[str]:
        if isinstance(node, Graph):
            return [self._var(n) for n in node.inputs]
        return ["x"]

    def _forward(self, node, plan: ClassPlan) -> list[str]:
        if isinstance(node, Sequential):
            out = []
            for name, child in node.steps:
                out += call_lines("x = ", self.apply(_attr(name, plan), child, plan, ["x"]), 8)
            return [*out, "        return x"]
        if isinstance(node, Residual):
            return self._residual_forward(node, plan)
        if isinstance(node, Graph):
            return self._graph_forward(node, plan)
        raise ExportError(f"not a container: {node!r}")

    def _residual_forward(self, node: Residual, plan: ClassPlan) -> list[str]:
        out = []
        var = "x"
        for name, child in node.body.steps:
            out += call_lines("out = ", self.apply(_attr(name, plan), child, plan, [var]), 8)
            var = "out"
        if node.shortcut is not None:
            short = _attr(node.shortcut_name, plan)
            call = self.apply(short, node.shortcut, plan, ["x"])
            if plan.flag:
                out += [_IND + "identity = x", _IND + f"if self.{short} is not None:"]
                out += call_lines("identity = ", call, 12)
            else:
                out += call_lines("identity = ", call, 8)
            out.append(_IND + f"out = {var} + identity")
        else:
            out.append(_IND + f"out = {var} + x")
        if node.activation is not None:
            act = _attr(node.activation_name, plan)
            out += call_lines("out = ", self.apply(act, node.activation, plan, ["out"]), 8)
        return [*out, _IND + "return out"]

    def _graph_forward(self, node: Graph, plan: ClassPlan) -> list[str]:
        var = {n: self._var(n) for n in node.inputs}
        listed = self._is_list(node)
        used = {r.partition(".")[0] for n in node.order for r in node.inputs_of(n)}
        used |= {ref.partition(".")[0] for _, ref in node.outputs}
        out = []
        for name in node.order:
            refs = node.inputs_of(name)
            args = [_ref(var, r) for r in refs]
            var[name] = self._var(name)
            callee, child = node.called(name)  # a Reuse node: its target's attribute again
            expr = self.apply(_attr(callee, plan, listed), child, plan, args)
            # a node whose value nothing reads (DB's thresh map at inference): called alone
            out += call_lines(f"{var[name]} = " if name in used else "", expr, 8)
        values = [_ref(var, ref) for _, ref in node.outputs]
        if node.returns == "single":
            out.append(_IND + f"return {values[0]}")
        elif node.returns == "tuple":
            out.append(_IND + f"return {', '.join(values)}")
        else:
            pairs = ", ".join(f"{literal(k)}: {v}" for (k, _), v in zip(node.outputs, values))
            out += call_lines("return ", f"{{{pairs}}}", 8)
        return out

    # ---- the file ---------------------------------------------------------------------------
    def layers(self) -> list[tuple[str, Layer]]:
        """Every layer of the spec with its path."""
        from ..blocks import walk

        return [(p, n) for p, n in walk(self.spec) if isinstance(n, Layer)]

    def access(self, path: str) -> str:
        """``self.layer1[0].conv1`` for the layer path ``layer1.0.conv1``."""
        node, text = self.spec, "self"
        for part in path.split(".") if path else ():
            inline = isinstance(node, Sequential) and (
                id(node) not in self.planner.of_node or self._is_steps(node)
            )
            inline = inline or self._is_list(node)
            text += f"[{part}]" if inline else f".{part}"
            node = dict(node.children)[part]
        return text

    def _var(self, name: str) -> str:
        """The forward's variable for a graph node or input: its name, with a trailing ``_``
        where it would hide a function or module of the file (a node named ``attention``)."""
        var = identifier(name)
        var = var + "_" if var in self._reserved else var
        self._vars.add(var)
        return var

    def write(self, source: str, layout: str) -> str:
        """The file; written again, the clashing variables renamed, where a graph's variable
        has the name of a helper or an import of the file (known once it is written)."""
        self._reserved: set[str] = set()
        self._vars: set[str] = set()
        text = self._write(source, layout)
        bound = {line.split()[-1].split(".")[0] for line in self.ctx.imports}
        clashes = self._vars & (set(self.ctx.helpers) | bound)
        if not clashes:
            return text
        self.ctx, self._reserved, self._vars = Context(), clashes, set()
        return self._write(source, layout)

    def _write(self, source: str, layout: str) -> str:
        self.code.imports(self.ctx)
        self._init_lines = self.code.init_weights(self.planner, self)
        classes = []
        for plan in self.planner.order:
            classes.append(self.write_class(plan))
        head = self.code.header(self.class_name, source, layout)
        parts = ['"""' + "\n".join(head) + '\n"""', "", *_import_block(self.ctx.imports)]
        for source_text in self.ctx.helpers.values():
            parts += ["", "", source_text.rstrip("\n")]
        for lines in classes:
            parts += ["", "", *lines]
        return "\n".join(parts).rstrip("\n") + "\n"


def _import_block(lines) -> list[str]:
    """Imports sorted as ruff's isort does: ``import x`` and ``from x import y`` by module,
    plain imports first within the standard library block, then third-party."""
    std = {"math", "collections", "functools"}

    def module(line):
        return line.split()[1]

    def key(line):
        return (line.startswith("from "), module(line).lower())

    first = sorted((x for x in lines if module(x).split(".")[0] in std), key=key)
    rest = sorted((x for x in lines if module(x).split(".")[0] not in std), key=key)
    out = ["from __future__ import annotations", ""]
    if first:
        out += [*first, ""]
    out += rest
    return out


_IND = " " * 8


def _def_lines(name: str, params: str) -> list[str]:
    """``def name(params):`` at method indent, wrapped as ruff does."""
    return call_lines("def ", f"{name}({params})", 4, tail=":")


def _hints(plan: ClassPlan) -> list[str]:
    """``int`` or ``tuple`` for each argument, from the values it takes (a code value's own
    hint)."""
    out = []
    for arg in plan.args:
        values = [v[p] for v in plan.values for p, a in plan.arg_of.items() if a == arg and p in v]
        if values and isinstance(values[0], Code):
            out.append(values[0].hint)
            continue
        out.append("int" if all(isinstance(x, int) for x in values) else "tuple")
    return out


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def _join_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _template_of(plan: ClassPlan):
    return plan.template


def _attr(name: str, plan: ClassPlan, listed: bool = False) -> str:
    if listed and name.isdigit():
        return name  # a layer of a list graph: ``self[0]``
    if not name.isidentifier() or identifier(name) != name:
        raise ExportError(
            f"{plan.name}: child {name!r} is no Python attribute name; the export writes "
            "named children as attributes (numbered steps only inside a sequential container)"
        )
    return name


def _comprehension_lines(callee: str, inner: str, indent: int) -> list[str]:
    """``callee([item for _ in range(n)])`` laid out as ruff does: on one line, or the list
    on its own line, or the item and its ``for`` on lines of their own."""
    pad, item_pad = " " * indent, " " * (indent + 8)
    if len(pad) + len(callee) + len(inner) + 4 <= WIDTH:
        return [f"{pad}{callee}([{inner}])"]
    if len(pad) + 4 + len(inner) + 2 <= WIDTH:
        return [f"{pad}{callee}(", f"{pad}    [{inner}]", f"{pad})"]
    item, _, loop = inner.rpartition(" for ")
    body = [*call_lines("", item, indent + 8), f"{item_pad}for {loop}"]
    return [f"{pad}{callee}(", f"{pad}    [", *body, f"{pad}    ]", f"{pad})"]


def _ref(var: dict, ref: str) -> str:
    node, _, key = ref.partition(".")
    return f"{var[node]}[{literal(key)}]" if key else var[node]


def _runs(items: list[str], single: str = "") -> list[str]:
    """Consecutive equal constructor calls as one ``*[call for _ in range(n)]`` (``single``,
    a list's gap, stays as it is)."""
    out: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j < len(items) and items[j] == items[i]:
            j += 1
        if j - i >= 2 and items[i] != single:
            out.append(f"*[{items[i]} for _ in range({j - i})]")
        else:
            out.extend(items[i:j])
        i = j
    return out


def _class_doc(node, plan: ClassPlan) -> str:
    count = len(plan.instances)
    if isinstance(node, Residual):
        what = "activation(body(x) + shortcut(x))"
    elif isinstance(node, Graph):
        what = f"a {node.kind} of {len(node.nodes)} nodes"
    else:
        what = f"{len(node.steps)} steps in order"
    used = f", used {count} times" if count > 1 else ""
    return f"{what[0].upper()}{what[1:]}{used}."


__all__ = ["FrameworkCode", "ModelWriter", "statement"]
