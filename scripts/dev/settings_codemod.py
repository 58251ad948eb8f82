"""Rewrite reads of the hotline's settings from Flask's config dict into the typed settings object.

    .venv/bin/python scripts/dev/settings_codemod.py [--check] [PATH ...]   (default: ivr/)

What it rewrites (only names that are fields of `ivr.settings.Settings`; Flask's own keys such as
SECRET_KEY, TESTING or SESSION_COOKIE_SECURE and test hooks such as CLOCK are left alone):

    current_app.config["OFFICE_HOURS"]        ->  settings().office_hours
    current_app.config.get("PUBLIC_URL", "")  ->  settings().public_url  (default: the field's)
    app.config["DATABASE_URL"] = url          ->  settings(app).database_url = url
    self.app.config["JOB_LEASE_SECONDS"]      ->  settings(self.app).job_lease_seconds
    config = current_app.config               ->  config = settings()
    config["DIAL_TIMEOUT"]                    ->  config.dial_timeout   (in that function only)

and adds `from ivr.settings import settings` where it is needed, then lets ruff sort the imports
and drop one left unused (`current_app`). It is idempotent: run it again after merging a branch
that added reads in the old style. What it cannot rewrite (a key computed at run time, a local
`config` also used as a dict) it lists, with file and line, for a hand fix.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ivr.settings import Settings  # noqa: E402

NAMES = {name.upper() for name in Settings.model_fields}
IMPORT = "from ivr.settings import settings"
SKIP = {ROOT / "ivr" / "settings.py"}


@dataclass
class Edit:
    start: tuple[int, int]  # (line, byte column), lines from 1
    end: tuple[int, int]
    text: str


@dataclass
class FileResult:
    edits: list[Edit] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # what needs a hand fix


def config_owner(node: ast.expr) -> ast.expr | None:
    """`X` when `node` is `X.config` and X is current_app, app, or something.app."""
    if not (isinstance(node, ast.Attribute) and node.attr == "config"):
        return None
    base = node.value
    if isinstance(base, ast.Name) and base.id in ("current_app", "app"):
        return base
    if isinstance(base, ast.Attribute) and base.attr == "app":
        return base
    return None


def key_of(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class Rewriter(ast.NodeVisitor):
    def __init__(self, source: str, path: Path) -> None:
        self.source = source
        self.path = path
        self.result = FileResult()
        self.function_aliases: list[set[str]] = [set()]
        self.shadowed = [False]  # a function whose own `settings` hides the accessor

    def segment(self, node: ast.expr) -> str:
        text = ast.get_source_segment(self.source, node)
        assert text is not None
        return text

    def accessor(self, owner: ast.expr) -> str:
        if isinstance(owner, ast.Name) and owner.id == "current_app":
            return "settings()"
        return f"settings({self.segment(owner)})"

    def replace(self, node: ast.AST, text: str) -> None:
        if self.shadowed[-1]:
            self.note(node, "a local `settings` hides the accessor here: fix by hand")
            return
        self.result.edits.append(
            Edit(
                (node.lineno, node.col_offset),
                (node.end_lineno or node.lineno, node.end_col_offset or 0),
                text,
            )
        )

    def note(self, node: ast.AST, why: str) -> None:
        self.result.left.append(f"{self.path.relative_to(ROOT)}:{node.lineno}: {why}")

    # A function's local `config = current_app.config` ------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        shadows = any(
            isinstance(n, ast.Name) and n.id == "settings" and isinstance(n.ctx, ast.Store)
            for n in ast.walk(node)
        ) or "settings" in {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        self.shadowed.append(shadows or self.shadowed[-1])
        aliases = set()
        for stmt in ast.walk(node):
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and config_owner(stmt.value) is not None
            ):
                name = stmt.targets[0].id
                if self._alias_is_only_read_by_setting_names(node, name):
                    aliases.add(name)
                    owner = config_owner(stmt.value)
                    assert owner is not None
                    self.replace(stmt.value, self.accessor(owner))
                else:
                    self.note(stmt, f"`{name}` is Flask's config used as a dict: fix by hand")
        self.function_aliases.append(aliases)
        self.generic_visit(node)
        self.shadowed.pop()
        self.function_aliases.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def _alias_is_only_read_by_setting_names(self, function: ast.AST, name: str) -> bool:
        for node in ast.walk(function):
            if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
                parent = self.parents.get(node)
                if isinstance(parent, ast.Subscript) and parent.value is node:
                    if key_of(parent.slice) in NAMES:
                        continue
                if isinstance(parent, ast.Attribute) and parent.value is node:
                    grand = self.parents.get(parent)
                    if (
                        parent.attr == "get"
                        and isinstance(grand, ast.Call)
                        and grand.args
                        and key_of(grand.args[0]) in NAMES
                    ):
                        continue
                return False
        return True

    # Reads and writes ------------------------------------------------------------------------
    def visit_Subscript(self, node: ast.Subscript) -> None:
        key = key_of(node.slice)
        owner = config_owner(node.value)
        if owner is not None:
            if key in NAMES:
                self.replace(node, f"{self.accessor(owner)}.{key.lower()}")
                return
            if key is None and isinstance(node.ctx, ast.Load):
                self.note(node, f"config[{self.segment(node.slice)}]: a key computed at run time")
        elif (
            isinstance(node.value, ast.Name)
            and node.value.id in self.function_aliases[-1]
            and key in NAMES
        ):
            self.replace(node, f"{node.value.id}.{key.lower()}")
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "get" and node.args:
            key = key_of(node.args[0])
            owner = config_owner(func.value)
            if owner is not None and key in NAMES:
                self.replace(node, f"{self.accessor(owner)}.{key.lower()}")
                return
            if (
                isinstance(func.value, ast.Name)
                and func.value.id in self.function_aliases[-1]
                and key in NAMES
            ):
                self.replace(node, f"{func.value.id}.{key.lower()}")
                return
        self.generic_visit(node)

    def run(self, tree: ast.Module) -> FileResult:
        self.parents = {
            child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)
        }
        self.visit(tree)
        return self.result


def binds_settings_otherwise(tree: ast.Module) -> bool:
    """Whether the module's top level already uses the name `settings` for something else."""
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if (alias.asname or alias.name) == "settings":
                    if not (stmt.module == "ivr.settings" and alias.name == "settings"):
                        return True
        elif isinstance(stmt, ast.Import):
            if any((a.asname or a.name) == "settings" for a in stmt.names):
                return True
        elif isinstance(stmt, (ast.Assign, ast.FunctionDef, ast.ClassDef)):
            names = (
                [t.id for t in stmt.targets if isinstance(t, ast.Name)]
                if isinstance(stmt, ast.Assign)
                else [stmt.name]
            )
            if "settings" in names:
                return True
    return False


def has_import(tree: ast.Module) -> bool:
    return any(
        isinstance(stmt, ast.ImportFrom)
        and stmt.module == "ivr.settings"
        and any(a.name == "settings" and a.asname is None for a in stmt.names)
        for stmt in tree.body
    )


def apply(source: str, edits: list[Edit]) -> str:
    lines = [line.encode() for line in source.splitlines(keepends=True)]
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        (l1, c1), (l2, c2) = edit.start, edit.end
        head, tail = lines[l1 - 1][:c1], lines[l2 - 1][c2:]
        lines[l1 - 1 : l2] = [head + edit.text.encode() + tail]
    return b"".join(lines).decode()


def add_import(source: str, tree: ast.Module) -> str:
    """Put the import after the module's last top-level import (ruff sorts it afterwards)."""
    last = max(
        (
            s.end_lineno or s.lineno
            for s in tree.body
            if isinstance(s, (ast.Import, ast.ImportFrom))
        ),
        default=0,
    )
    lines = source.splitlines(keepends=True)
    lines.insert(last, IMPORT + "\n")
    return "".join(lines)


def rewrite(path: Path) -> tuple[str | None, list[str]]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    result = Rewriter(source, path).run(tree)
    if not result.edits:
        return None, result.left
    if binds_settings_otherwise(tree):
        return None, [
            *result.left,
            f"{path.relative_to(ROOT)}: the name `settings` is taken in this module; "
            f"{len(result.edits)} reads left for a hand fix",
        ]
    new = apply(source, result.edits)
    if not has_import(tree):
        new = add_import(new, ast.parse(new))
    return new, result.left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "ivr"])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if I would")
    args = parser.parse_args()
    files = sorted(
        {
            p.resolve()
            for path in args.paths
            for p in ([path] if path.is_file() else path.rglob("*.py"))
            if p.resolve() not in SKIP
        }
    )
    changed, left = [], []
    for path in files:
        new, notes = rewrite(path)
        left += notes
        if new is not None:
            changed.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in changed:
        print(("would rewrite " if args.check else "rewrote ") + str(path.relative_to(ROOT)))
    if changed and not args.check:
        ruff = [sys.executable, "-m", "ruff"]
        names = [str(p) for p in changed]
        subprocess.run([*ruff, "check", "--quiet", "--fix", "--select", "I,F401", *names])
        subprocess.run([*ruff, "format", "--quiet", *names])
    for line in left:
        print("by hand: " + line)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
