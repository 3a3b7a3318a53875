"""The architecture as the import graph: the core library never reaches into the services."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_core_library_never_imports_services() -> None:
    """No module under supernode/ imports services.* (services are thin shells around it)."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path)
                                            if m == "services" or m.startswith("services."))
        for path in (ROOT / "supernode").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_model_and_engines_do_no_io() -> None:
    """The hardware model, engines, cache core and policies import no socket, HTTP or gRPC."""
    io_modules = ("socket", "grpc", "httpx", "aiohttp", "fastapi", "uvicorn", "redis")
    pure = ["perf", "engine", "policy", "hardware", "models", "sim"]
    for package in pure:
        for path in (ROOT / "supernode" / package).rglob("*.py"):
            bad = [m for m in imported_modules(path) if m.split(".")[0] in io_modules]
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
