"""The import arrows of DESIGN.md: frontend -> protocol <- workers -> models, and the one
arrow from models into protocol (the converter's samples decode with protocol.images)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("frontend", "workers", "protocol", "models")
ALLOWED = {
    "frontend": {"frontend", "protocol"},
    "workers": {"workers", "protocol", "models"},
    "protocol": {"protocol"},
    "models": {"models"},
}
EXCEPTIONS = {"models/convert/samples.py": {"protocol.images"}}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def test_imports_flow_as_the_design_says():
    wrong = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = str(path.relative_to(REPO))
            for module in sorted(imports(path)):
                if module.split(".")[0] in ALLOWED[package]:
                    continue
                if module in EXCEPTIONS.get(name, ()):
                    continue
                wrong.append(f"{name} imports {module}")
    assert wrong == []
