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


LIFECYCLE_DRIVERS = {
    "services/scheduler/flow.py": "supernode.lifecycle.scheduler",
    "services/prefill/worker.py": "supernode.lifecycle.prefill",
    "services/decode/worker.py": "supernode.lifecycle.decode",
    "supernode/sim/driver.py": "supernode.lifecycle.scheduler",
}
# What only the lifecycle may use to decide: routing policies, the pricing of batches and
# steps, the engines' batch forming. A driver importing one of these decides on its own.
DECISION_MODULES = ("supernode.policy", "supernode.perf.prefill", "supernode.perf.decode",
                    "supernode.perf.comm")
DECISION_NAMES = {"make_policy", "prefill_time", "decode_step_time", "transfer_time",
                  "PrefillEngine.next_batch"}


def imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            for alias in node.names}


def test_both_drivers_run_the_shared_lifecycle() -> None:
    """The live services and the simulator take the request lifecycle from supernode.lifecycle
    (one place for every decision about a request)."""
    for path, module in LIFECYCLE_DRIVERS.items():
        assert module in imported_modules(ROOT / path), f"{path} does not use {module}"


def test_drivers_make_no_decision_of_their_own() -> None:
    """Neither the simulator nor the live request path imports routing policies or the
    hardware model's pricing: routing, admission, batching and stepping are the lifecycle's."""
    drivers = [*(ROOT / "supernode" / "sim").rglob("*.py"),
               *(ROOT / p for p in LIFECYCLE_DRIVERS if p.startswith("services"))]
    for path in drivers:
        modules = imported_modules(path)
        bad = [m for m in modules if m.startswith(DECISION_MODULES)]
        bad += sorted(imported_names(path) & DECISION_NAMES)
        assert not bad, f"{path.relative_to(ROOT)} decides on its own: imports {bad}"
