"""Every public module, function, class and method of dcl_prob has a docstring.

Public means a name without a leading underscore, defined (not imported) in a
module of the package, plus the public methods and properties of public
classes, and ``__call__``. The check parses the source with ``ast`` instead of
importing the package, so it takes about a second.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dcl_prob"
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _is_public(name: str) -> bool:
    return not name.startswith("_") or name == "__call__"


def _modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.name == "__init__.py" or not path.name.startswith("_")
    )


def _missing_docstrings(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """Return ``module:qualified.name`` of each public definition without one.

    ``root`` is the directory that contains the package, which names the module.
    """
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    missing = [] if ast.get_docstring(tree) else [f"{module} (module docstring)"]
    for node in tree.body:
        if not isinstance(node, DEFINITIONS) or not _is_public(node.name):
            continue
        if not ast.get_docstring(node):
            missing.append(f"{module}:{node.name}")
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                public = isinstance(member, FUNCTIONS) and _is_public(member.name)
                if public and not ast.get_docstring(member):
                    missing.append(f"{module}:{node.name}.{member.name}")
    return missing


def test_package_modules_found():
    names = {path.name for path in _modules()}
    assert {"__init__.py", "fit.py", "bayes.py", "rnn.py"} <= names


def test_missing_docstring_detected(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        '"""Module."""\n'
        "def documented():\n"
        '    """Yes."""\n'
        "def bare():\n"
        "    pass\n"
        "def _private():\n"
        "    pass\n"
        "class Thing:\n"
        '    """A thing."""\n'
        "    def method(self):\n"
        "        pass\n",
        encoding="utf-8",
    )
    missing = _missing_docstrings(source, root=tmp_path)
    assert missing == ["example:bare", "example:Thing.method"]


def test_public_api_has_docstrings():
    missing = [name for path in _modules() for name in _missing_docstrings(path)]
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)
