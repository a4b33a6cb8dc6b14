"""Resolving the names a file uses to the canonical names of what they refer to.

`import torch.nn as nn` then `nn.Dropout` is `torch.nn.Dropout`; `from torch.nn import functional as F` then
`F.gelu` is `torch.nn.functional.gelu`; `from torch.nn import Dropout as D` then `D` is `torch.nn.Dropout`.
The static rules compare these canonical names with their tables, so they never depend on how a file
spells its imports.

Resolution is pure AST and costs microseconds per name. Only where the file itself cannot tell (a name
imported from another file of the project) do we look further: first by parsing that file the same way (a
re-export such as `Act = nn.GELU` in `blocks.py`, cheap and cached by modification time), then, as a last
resort and only if allowed, with jedi, which follows what our reader does not (dynamic `__all__`, star
imports of star imports, ...). Jedi is imported lazily so the plain AST path never pays for it.

Model discovery calls `qualified_name(tree, expr)` (keep that signature); the static rules use `names_for`.

Why one module of ~440 lines: the three steps (this file's bindings, another project file's, jedi) are one
fallback chain over one cache; split, each part would import the others back.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from shapelens.core.source import Source, parse, read_source_or_empty

# torch defines its public classes deep inside `torch.nn.modules.<file>` and re-exports them from
# `torch.nn`; jedi and a project's own re-exports report the deep name, the tables use the public one.
_CANONICAL_PREFIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^torch\.nn\.modules(?:\.\w+)?\.(\w+)$"), r"torch.nn.\1"),
    (re.compile(r"^torch\._C\._VariableFunctions\.(\w+)$"), r"torch.\1"),
    (re.compile(r"^torch\._C\._nn\.(\w+)$"), r"torch.nn.functional.\1"),
    (re.compile(r"^torch\._tensor\.Tensor\.(\w+)$"), r"torch.Tensor.\1"),
)

_MAX_DEPTH = 6  # re-export chains longer than this are not worth following (and cycles end here)


def canonical(full_name: str) -> str:
    """The public spelling of a dotted name (`torch.nn.modules.dropout.Dropout` -> `torch.nn.Dropout`)."""
    for pattern, replacement in _CANONICAL_PREFIXES:
        if pattern.match(full_name):
            return pattern.sub(replacement, full_name)
    return full_name


def dotted(expr: ast.AST) -> str | None:
    """`a.b.c` for a chain of attributes on a name, else None."""
    parts = _parts(expr)
    return ".".join(parts) if parts is not None else None


def _parts(node: ast.AST) -> list[str] | None:
    """`a.b.c` as `["a", "b", "c"]`; None for anything that is not a plain chain of names."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


@dataclass
class _Bindings:
    """What the top-level names of one module are bound to, as far as the AST tells."""

    imports: dict[str, str] = field(default_factory=dict)  # local name -> dotted name it was imported as
    aliases: dict[str, ast.expr] = field(default_factory=dict)  # `Act = nn.GELU`: name -> the expression
    local: set[str] = field(default_factory=set)  # defined here (class, def, other assignments)
    stars: list[str] = field(default_factory=list)  # modules of `from m import *`, in order


def _module_of(node: ast.ImportFrom, package: str | None) -> str | None:
    """The absolute module of a `from ... import`; None for a relative import we cannot anchor."""
    if not node.level:
        return node.module or ""
    if package is None:
        return None
    parts = package.split(".") if package else []
    if node.level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (node.level - 1)]
    if node.module:
        base.append(node.module)
    return ".".join(base)


def _bindings(tree: ast.Module, package: str | None) -> _Bindings:
    """Read the module's bindings. Top-level statements in order, so a later definition shadows an
    earlier import; imports nested in functions or `try` blocks only add names nothing else binds (a
    script often imports inside `main()` or under `try: ... except ImportError`)."""
    found = _Bindings()

    def bind_import(node: ast.Import | ast.ImportFrom, override: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                # `import torch.nn` binds `torch`; `import torch.nn as nn` binds `nn` to the submodule
                name = alias.asname or alias.name.split(".")[0]
                target = alias.name if alias.asname else name
                if override or name not in found.imports:
                    found.imports[name] = target
                    found.local.discard(name)
                    found.aliases.pop(name, None)
            return
        module = _module_of(node, package)
        if module is None:
            return
        for alias in node.names:
            if alias.name == "*":
                found.stars.append(module)
                continue
            name = alias.asname or alias.name
            if override or name not in found.imports:
                found.imports[name] = f"{module}.{alias.name}" if module else alias.name
                found.local.discard(name)
                found.aliases.pop(name, None)

    def bind_local(name: str, value: ast.expr | None, nested: bool) -> None:
        if nested and name in found.imports:
            return  # `except ImportError: x = None`: a fallback, not what the import binds
        found.imports.pop(name, None)
        if value is not None and _parts(value) is not None:
            found.aliases[name] = value
            found.local.discard(name)
        else:
            found.aliases.pop(name, None)
            found.local.add(name)

    def top_level(body: list[ast.stmt], nested: bool) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                bind_import(stmt, override=True)
            elif isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                bind_local(stmt.name, None, nested)
            elif isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    for name in target_names(target):
                        single = isinstance(target, ast.Name) and len(stmt.targets) == 1
                        bind_local(name, stmt.value if single else None, nested)
            elif isinstance(stmt, ast.AnnAssign | ast.AugAssign) and isinstance(stmt.target, ast.Name):
                bind_local(stmt.target.id, stmt.value if isinstance(stmt, ast.AnnAssign) else None, nested)
            elif isinstance(stmt, ast.If | ast.Try):
                # `if TYPE_CHECKING:` / `try: import x except ImportError: x = None`: the imports count,
                # the fallbacks do not shadow them
                for block in _blocks(stmt):
                    top_level(block, nested=True)

    top_level(tree.body, nested=False)
    for node in statements(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and node.col_offset > 0:
            bind_import(node, override=False)
    return found


def statements(node: ast.AST) -> Iterator[ast.stmt]:
    """Every statement below `node`, without entering expressions: several times cheaper than `ast.walk`
    for what only statements can be (imports, assignments)."""
    stack = [node]
    while stack:
        current = stack.pop()
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(current, name, None)
            if isinstance(block, list):
                for child in reversed(block):
                    if isinstance(child, ast.stmt):
                        yield child
                    stack.append(child)


def _blocks(stmt: ast.If | ast.Try) -> Iterator[list[ast.stmt]]:
    yield stmt.body
    yield stmt.orelse
    if isinstance(stmt, ast.Try):
        for handler in stmt.handlers:
            yield handler.body
        yield stmt.finalbody


def target_names(target: ast.AST | None) -> Iterator[str]:
    """The names an assignment target binds: `a`, `a, (b, *c)` → a, b, c."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from target_names(element)
    elif isinstance(target, ast.Starred):
        yield from target_names(target.value)


# -- the project's other files --------------------------------------------------------------------------


def package_root(path: str) -> str:
    """The folder a file's top-level package lives in (what `sys.path` holds when the project runs)."""
    folder = os.path.dirname(os.path.abspath(path))
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def module_name(path: str) -> str:
    """`pkg.sub.mod` for `<root>/pkg/sub/mod.py`, relative to `package_root(path)`."""
    rel = os.path.relpath(os.path.abspath(path), package_root(path))
    parts = rel[: -len(".py")].split(os.sep) if rel.endswith(".py") else rel.split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _package_of(path: str | None) -> str | None:
    if path is None:
        return None
    name = module_name(path)
    if os.path.basename(path) == "__init__.py":
        return name
    return name.rpartition(".")[0]


@dataclass
class _ProjectModule:
    mtime: float
    bindings: _Bindings | None  # None: the file does not parse (jedi may still read it)


_PROJECT_CACHE: dict[str, _ProjectModule] = {}  # path -> its bindings, while its mtime is unchanged
# Reading another file costs a parse (about 1 ms per 5 KB). A user's project needs a few; a file inside a
# large package (opened from site-packages) could pull in dozens through star imports. So one resolver
# looks into at most this many files (cached or not, so that the answer does not depend on what an earlier
# run left in the cache) and reads none larger than this.
_MAX_FILES = 16
_MAX_FILE_BYTES = 100_000


def find_module_file(module: str, roots: tuple[str, ...]) -> str | None:
    """The project file a dotted module name is, under one of `roots` (`pkg/mod.py` or `pkg/mod/__init__.py`)."""
    parts = module.split(".")
    for root in roots:
        base = os.path.join(root, *parts)
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    return None


def _load(path: str) -> _ProjectModule | None:
    """The bindings of a project file, from the cache or by parsing it; None for a missing or too large
    file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    cached = _PROJECT_CACHE.get(path)
    if cached is not None and cached.mtime == stat.st_mtime:
        return cached
    if stat.st_size > _MAX_FILE_BYTES:
        return None
    parsed = parse(path, read_source_or_empty(path))
    bindings = _bindings(parsed.tree, _package_of(path)) if isinstance(parsed, Source) else None
    loaded = _ProjectModule(stat.st_mtime, bindings)
    _PROJECT_CACHE[path] = loaded
    return loaded


# -- the resolver ---------------------------------------------------------------------------------------


class Names:
    """Canonical names for the expressions of one file.

    `path` (the file on disk) lets the resolver follow imports into the project's other files; without it,
    or for an unsaved buffer, names imported from the project stay unresolved. `use_jedi` allows the jedi
    fallback for what the AST reader cannot follow; `text` is the buffer jedi reads (the editor's, which
    may be newer than the file on disk). `jedi_for` limits that fallback to chains ending in one of those
    names (the ones a caller has a use for), so a star import does not send every local name to jedi.
    """

    def __init__(
        self,
        tree: ast.Module,
        path: str | None = None,
        text: str | None = None,
        use_jedi: bool = False,
        jedi_for: frozenset[str] | None = None,
    ) -> None:
        self.path = os.path.abspath(path) if path else None
        self.text = text
        self.use_jedi = use_jedi
        self.jedi_for = jedi_for
        on_disk = self.path is not None and os.path.isfile(self.path)
        self._roots: tuple[str, ...] = ()
        if on_disk and self.path is not None:
            folder = os.path.dirname(self.path)
            self._roots = tuple(dict.fromkeys((package_root(self.path), folder)))
        self._bindings = _bindings(tree, _package_of(self.path) if on_disk else None)
        self._jedi_script: Any = None
        self._files: set[str] = set()  # project files this resolver has looked into (see _MAX_FILES)
        self._cache: dict[str, str | None] = {}

    def resolve(self, node: ast.AST) -> str | None:
        """The canonical dotted name of a name or attribute chain (`F.gelu` -> `torch.nn.functional.gelu`).

        None when the chain does not start at an import (a local variable, `self.x`, a call result) or
        leads into a project file whose binding cannot be read.
        """
        parts = _parts(node)
        if parts is None:
            return None
        key = ".".join(parts)
        if key not in self._cache:
            self._cache[key] = self._resolve(parts, self._bindings, 0, node)
        return self._cache[key]

    def _resolve(self, parts: list[str], bindings: _Bindings, depth: int, node: ast.AST | None) -> str | None:
        head, rest = parts[0], parts[1:]
        if depth > _MAX_DEPTH:
            return None
        if head in bindings.aliases:
            base = _parts(bindings.aliases[head])
            if base is None or base[0] == head:
                return None
            # an alias names a chain in the same module: `Act = nn.GELU`, `F = torch.nn.functional`
            return self._resolve(base + rest, bindings, depth + 1, None)
        if head in bindings.imports:
            full = bindings.imports[head].split(".") + rest
            return self._through_project(full, depth, node)
        if head in bindings.local:
            return None
        for star in bindings.stars:
            found = self._from_module(star, [head, *rest], depth, node)
            if found is not None:
                return found
        if any(find_module_file(star, self._roots) is None for star in bindings.stars):
            # `from torch.nn import *`: which names a library exports is not in this project's text
            return self._jedi(node, parts[-1])
        return None

    def _through_project(self, full: list[str], depth: int, node: ast.AST | None) -> str | None:
        """A name imported from somewhere: torch and other libraries are taken as spelled; a module of
        this project is read to see what the name really is."""
        if not self._roots or full[0] == "torch":
            return canonical(".".join(full))
        # the longest prefix that is a project module file
        for split in range(len(full) - 1, 0, -1):
            module = ".".join(full[:split])
            if find_module_file(module, self._roots) is not None:
                found = self._from_module(module, full[split:], depth, node)
                return found if found is not None else canonical(".".join(full))
        return canonical(".".join(full))

    def _from_module(self, module: str, parts: list[str], depth: int, node: ast.AST | None) -> str | None:
        """What `module.<parts>` is, reading the project file of `module` (None when there is none)."""
        path = find_module_file(module, self._roots) if self._roots else None
        if path is None:
            return None
        if path not in self._files:
            if len(self._files) >= _MAX_FILES:
                return None
            self._files.add(path)
        loaded = _load(path)
        if loaded is None:
            return None
        bindings = loaded.bindings
        if bindings is None:
            return self._jedi(node, parts[-1])  # jedi reads files that do not parse (yet)
        head = parts[0]
        if head in bindings.local:
            return f"{module}.{'.'.join(parts)}"  # defined in that file: a project class or function
        if head in bindings.aliases or head in bindings.imports or bindings.stars:
            found = self._resolve(parts, bindings, depth + 1, None)
            if found is not None:
                return found
        # a submodule (`from pkg import layers` then `layers.Act`)
        sub = f"{module}.{head}"
        if find_module_file(sub, self._roots) is not None and len(parts) > 1:
            return self._from_module(sub, parts[1:], depth + 1, node)
        return self._jedi(node, parts[-1])

    def _jedi(self, node: ast.AST | None, last: str) -> str | None:
        """Ask jedi what the name at `node` is; only where allowed and where the AST reader gave up.
        `last` is the name's last part as its defining module spells it (`GELU` for `import GELU as G`)."""
        if not self.use_jedi or node is None or self.path is None or self.text is None:
            return None
        if self.jedi_for is not None and last not in self.jedi_for:
            return None
        end_line = getattr(node, "end_lineno", None)
        end_col = getattr(node, "end_col_offset", None)
        if end_line is None or end_col is None:
            return None
        try:
            if self._jedi_script is None:
                import jedi

                root = self._roots[0] if self._roots else os.path.dirname(self.path)
                self._jedi_script = jedi.Script(code=self.text, path=self.path, project=jedi.Project(root))
            # infer at the last character of the chain: the attribute's value, through re-exports
            found = self._jedi_script.infer(end_line, max(end_col - 1, 0))
        except Exception:  # jedi is a best-effort fallback; its failures are not ours to report
            return None
        # what the name *is* (a class, a function, a module), never the type of an instance it holds
        names = {canonical(n.full_name) for n in found if n.full_name and n.type in ("class", "function", "module")}
        return names.pop() if len(names) == 1 else None


# -- the per-tree API model discovery uses ---------------------------------------------------------------

_PER_TREE: WeakKeyDictionary[ast.Module, Names] = WeakKeyDictionary()


def names_for(
    tree: ast.Module,
    path: str | None = None,
    text: str | None = None,
    use_jedi: bool = False,
    jedi_for: frozenset[str] | None = None,
) -> Names:
    """The resolver of one parsed file, built once per tree (the rules and discovery share it); a caller
    that brings the path or allows jedi gets a resolver that uses them."""
    found = _PER_TREE.get(tree)
    if found is None or (path is not None and found.path is None) or (use_jedi and not found.use_jedi):
        found = Names(tree, path or (found.path if found else None), text, use_jedi, jedi_for)
        _PER_TREE[tree] = found
    return found


def qualified_name(tree: ast.Module, expr: ast.expr) -> str | None:
    """The canonical dotted name `expr` refers to through the file's imports, or None if it is not imported.

    Submodule paths are folded the way torch re-exports them (`torch.nn.modules.linear.Linear` and
    `torch.nn.Linear` both give `torch.nn.Linear`).
    """
    return names_for(tree).resolve(expr)
