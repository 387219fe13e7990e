"""The package's layers (docs/architecture.md): every import inside csn_plugin, read from the source
with ast (eager and lazy ones alike), goes down or sideways, never up, and the imports form no
cycle. The few upward imports that are part of the design are listed in ALLOWED_UPWARD; each
must stay lazy (inside a function)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# source folder -> the package it is installed as (pyproject's package-dir)
SOURCE_DIRS = {"csn_plugin": "csn_plugin", "hooks": "csn_plugin.hooks", "cli": "csn_plugin.cli", "models": "csn_plugin.models"}

# Bottom to top. A module may import from its own layer or any layer below.
LAYERS = (
    ("errors", "physics", "symmetry", "priors", "data", "models"),  # facts and domain statistics: no patterns, no files, no networks
    ("crystallography",),                                 # peak search, indexing, extinctions (on arrays)
    ("grid", "pattern"),                                  # validated arrays and the model grid
    ("readers",),                                         # files -> Pattern
    ("inputs",),                                          # any accepted object -> Pattern
    ("nets",),                                            # networks, registry, weights I/O
    ("inference",),                                       # grid -> posterior -> ClassificationResult
    ("synth",),                                           # structures -> reflections -> rendered batches
    ("evaluation",),                                      # evaluation sets and metrics
    ("training",),                                        # training (monitors on evaluation sets), calibration
    ("plugins", "hooks", "cli", "testing", "__init__"),   # the host-facing top
)
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}

# (importing module, imported module): upward on purpose, always inside a function.
ALLOWED_UPWARD = {
    # a structure (file, pymatgen or xrayutilities object) given to to_pattern is simulated and
    # rendered on request: the one place the input layer reaches into synth/
    ("csn_plugin.inputs", "csn_plugin.synth.simulate"): "structures are simulated on request",
    ("csn_plugin.inputs", "csn_plugin.synth.render"): "structures are rendered on request",
    # Pattern.from_file, kept for the public API: the plugin layer asks the hooks for readers
    ("csn_plugin.pattern", "csn_plugin.plugins"): "Pattern.from_file reads with every registered reader",
}


def _module_name(path: Path):
    parts = path.relative_to(REPO).with_suffix("").parts
    is_package = parts[-1] == "__init__"
    names = [SOURCE_DIRS[parts[0]], *parts[1:-1]] + ([] if is_package else [parts[-1]])
    return ".".join(names), is_package


def _imports(path: Path):
    """[(imported module, line, lazy)] of one file; ``from . import x`` counts as module ``.x``."""
    module, is_package = _module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    lazy_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lazy_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, node.lineno in lazy_lines) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno, node.lineno in lazy_lines))
            if node.module is None or target in PACKAGES:  # from . import x / from .synth import render
                found += [(f"{target}.{alias.name}", node.lineno, node.lineno in lazy_lines)
                          for alias in node.names if f"{target}.{alias.name}" in MODULES]
    return [(target, line, lazy) for target, line, lazy in found if target == "csn_plugin" or target.startswith("csn_plugin.")]


FILES = sorted(path for folder in SOURCE_DIRS for path in (REPO / folder).rglob("*.py"))
MODULES = {_module_name(path)[0] for path in FILES}
PACKAGES = {_module_name(path)[0] for path in FILES if path.name == "__init__.py"}


def _layer(module):
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return LAYER_OF.get(top)


def _known(module):
    """The nearest enclosing name that is a module of the package (``csn_plugin.x.attribute`` -> ``csn_plugin.x``)."""
    while module not in MODULES and "." in module:
        module = module.rsplit(".", 1)[0]
    return module


def test_every_module_has_a_layer():
    missing = sorted(module for module in MODULES if _layer(module) is None)
    assert not missing, f"put these in a layer of tests/test_layers.py and docs/architecture.md: {missing}"


def test_no_upward_imports():
    upward, not_lazy = [], []
    for path in FILES:
        module, _ = _module_name(path)
        for target, line, lazy in _imports(path):
            target = _known(target)
            if _layer(target) is None or _layer(module) is None or _layer(target) <= _layer(module):
                continue
            allowed = (module, target) in ALLOWED_UPWARD
            if not allowed:
                upward.append(f"{path.relative_to(REPO)}:{line}: {module} -> {target}")
            elif not lazy:
                not_lazy.append(f"{path.relative_to(REPO)}:{line}: {module} -> {target}")
    assert not upward, "imports from a layer above:\n" + "\n".join(upward)
    assert not not_lazy, "allowed upward imports must stay inside a function:\n" + "\n".join(not_lazy)


def test_allowed_upward_imports_are_still_needed():
    seen = set()
    for path in FILES:
        module, _ = _module_name(path)
        seen |= {(module, _known(target)) for target, _, _ in _imports(path)}
    assert set(ALLOWED_UPWARD) <= seen, f"no longer imported, drop from ALLOWED_UPWARD: {set(ALLOWED_UPWARD) - seen}"


def test_no_import_cycles():
    graph = {module: set() for module in MODULES}
    for path in FILES:
        module, _ = _module_name(path)
        for target, _, _ in _imports(path):
            target = _known(target)
            if target in MODULES and target != module and (module, target) not in ALLOWED_UPWARD:
                # a package's __init__ importing its own submodules is no cycle of meaning
                if not target.startswith(module + "."):
                    graph[module].add(target)
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(sorted(cycle)) for cycle in cycles)


def _strongly_connected(graph):
    """Tarjan's algorithm: the strongly connected components with more than one module."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(REPO)))
def test_imports_inside_the_package_are_relative(path):
    tree = ast.parse(path.read_text())
    absolute = [
        node.lineno for node in ast.walk(tree)
        if (isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "csn_plugin")
        or (isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "csn_plugin" for alias in node.names))
    ]
    assert not absolute, f"{path.relative_to(REPO)}: absolute csn_plugin imports at lines {absolute}: use relative ones"


# crystallography works on arrays: below grid, pattern, readers, nets and inference, it may use
# only these (besides itself).
CRYSTALLOGRAPHY_MAY_IMPORT = {"csn_plugin.errors", "csn_plugin.physics", "csn_plugin.symmetry", "csn_plugin.priors"}


def test_crystallography_imports_only_facts():
    wrong = []
    for path in FILES:
        module, _ = _module_name(path)
        if not (module == "csn_plugin.crystallography" or module.startswith("csn_plugin.crystallography.")):
            continue
        for target, line, _ in _imports(path):
            target = _known(target)
            if target.startswith("csn_plugin.crystallography") or target in CRYSTALLOGRAPHY_MAY_IMPORT:
                continue
            wrong.append(f"{path.relative_to(REPO)}:{line}: {module} -> {target}")
    assert not wrong, "crystallography may import errors, physics, symmetry and priors only:\n" + "\n".join(wrong)
