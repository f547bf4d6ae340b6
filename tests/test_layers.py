"""The project's modules form layers, without import cycles.

Imports are read from the source with `ast`, wherever they stand in a module: at its top,
under `if TYPE_CHECKING:`, or inside a function. An import moved out of sight still counts,
so a cycle cannot be hidden instead of removed.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "drivers", "rules", "simulators", "bench", "fuzz", "hub")

# Each module belongs to the layer of its longest prefix here (the top packages of several
# layers only to their own, as themselves); a module of none fails the test below, so a
# new module is placed on purpose.
PACKAGE_LAYERS: Mapping[str, str] = {"gateway": "kernel"}  # its __init__: only the version
LAYERS: Mapping[str, str] = {
    # the kernel: what every device, rule and tool speaks in
    "gateway.core.backoff": "kernel",
    "gateway.core.city": "kernel",
    "gateway.core.clock": "kernel",
    "gateway.core.config": "kernel",
    "gateway.core": "kernel",
    "gateway.core.counters": "kernel",
    "gateway.core.journaling": "kernel",
    "gateway.core.kinds": "kernel",
    "gateway.core.model": "kernel",
    "gateway.core.operator_files": "kernel",
    "gateway.core.problems": "kernel",
    "gateway.core.telemetry": "kernel",
    "gateway.core.timeline": "kernel",
    "gateway.core.topics": "kernel",
    "gateway.core.upstream_config": "kernel",
    "gateway.core.waiting": "kernel",
    # device protocols and the rule engine, each on the kernel alone
    "drivers": "drivers",
    "rules": "rules",
    # the running gateway: journal, link, sinks, and the supervisor that wires them
    "gateway.acks": "runtime",
    "gateway.clock_sync": "runtime",
    "gateway.city_connection": "runtime",
    "gateway.config_file": "runtime",
    "gateway.console": "runtime",
    "gateway.journal": "runtime",
    "gateway.lock_handover": "runtime",
    "gateway.journal_desk": "runtime",
    "gateway.link": "runtime",
    "gateway.metrics": "runtime",
    "gateway.mqtt_link": "runtime",
    "gateway.receipt_memory": "runtime",
    "gateway.memory_ceiling": "runtime",
    "gateway.overload": "runtime",
    "gateway.restart": "runtime",
    "gateway.sinks": "runtime",
    "gateway.status": "runtime",
    "gateway.status_report": "runtime",
    "gateway.supervisor": "runtime",
    "gateway.systemd_notify": "runtime",
    "gateway.upstreams": "runtime",
    # what an operator runs beside it
    "gateway.ops.alert_ack": "tooling",
    "gateway.ops.broker_acl": "tooling",
    "gateway.ops.cli": "tooling",
    "gateway.ops.demo": "tooling",
    "gateway.ops.doctor": "tooling",
    "gateway.ops.grafana": "tooling",
    "gateway.ops": "tooling",
    "gateway.ops.private_servers": "tooling",
    "gateway.ops.sharing_cli": "tooling",
    "gateway.ops.sharing_report": "tooling",
    "gateway.ops.store_query": "tooling",
    # the city hub: the compounds' stream into the central store, on the running gateway's
    # pieces (the store writer, the record model)
    "hub": "hub",
    # devices that are not there, and measurements
    "simulators": "simulators",
    "bench": "bench",
    "fuzz": "bench",
}

# which layers the modules of a layer may import (their own included)
MAY_IMPORT: Mapping[str, frozenset[str]] = {
    "kernel": frozenset({"kernel"}),
    "drivers": frozenset({"kernel", "drivers"}),
    "rules": frozenset({"kernel", "rules"}),
    "runtime": frozenset({"kernel", "drivers", "rules", "runtime"}),
    "tooling": frozenset({"kernel", "drivers", "rules", "runtime", "tooling", "simulators",
                          "hub"}),
    "hub": frozenset({"kernel", "runtime", "hub"}),
    "simulators": frozenset({"kernel", "drivers", "tooling", "simulators"}),
    "bench": frozenset({"kernel", "drivers", "rules", "runtime", "tooling", "simulators",
                        "bench", "hub"}),
}

# what loading a configuration must not load: device, network and store libraries
DRIVER_LIBRARIES = ("pymodbus", "serial", "serial_asyncio_fast", "paho", "aiomqtt", "aiohttp",
                    "gpiozero", "influxdb_client", "nats")

Graph = dict[str, dict[str, int]]  # importer -> imported -> line of the first such import


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, tuple[Path, bool]]:
    found: dict[str, tuple[Path, bool]] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = (path, is_package)
    return found


def _imported_names(module: str, is_package: bool, tree: ast.Module
                    ) -> Iterator[tuple[str, int]]:
    """Every dotted name an import statement anywhere in `tree` may load, with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:  # a module of the package, or a name in it
                yield f"{source}.{alias.name}", node.lineno


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> Graph:
    """Which project module imports which; importing `a.b.c` also runs `a` and `a.b`."""
    modules = _modules(root, packages)
    graph: Graph = {name: {} for name in modules}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for dotted, line in _imported_names(name, is_package, tree):
            parts = dotted.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if not parts:
                continue  # not a project module
            target = ".".join(parts)
            for n in range(1, len(parts) + 1):
                loaded = ".".join(parts[:n])
                # a module's own packages are loaded before it: not an import of its own,
                # unless it names one of them
                if loaded == name or (loaded != target and name.startswith(loaded + ".")):
                    continue
                graph[name].setdefault(loaded, line)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _describe(graph: Graph, component: list[str]) -> str:
    members = set(component)
    return "\n".join(f"  {a} -> {b} (line {line})" for a in component
                     for b, line in sorted(graph[a].items()) if b in members)


def layer_of(module: str) -> str | None:
    if module in PACKAGE_LAYERS:
        return PACKAGE_LAYERS[module]
    parts = module.split(".")
    while parts:
        layer = LAYERS.get(".".join(parts))
        if layer is not None:
            return layer
        parts.pop()
    return None


def test_no_import_cycle_among_the_project_modules() -> None:
    graph = import_graph(REPO)
    assert {"gateway.supervisor", "drivers.profile", "rules.engine"} <= graph.keys()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n\n".join(_describe(graph, c) for c in found)


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_cycle_is_found_behind_type_checking_and_inside_functions(tmp_path: Path) -> None:
    _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from pkg.b import B
            """,
        "pkg/b.py": """
            def later() -> None:
                from . import c
            """,
        "pkg/c.py": "import pkg.a\n",
        "pkg/d.py": "from pkg import a\n",
    })
    graph = import_graph(tmp_path, ("pkg",))
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert graph["pkg.d"] == {"pkg.a": 1}


def test_a_package_that_loads_a_module_importing_it_back_is_a_cycle(tmp_path: Path) -> None:
    _package(tmp_path, {
        "pkg/__init__.py": "from pkg.sub import thing\n",
        "pkg/sub/__init__.py": "from pkg.sub.impl import thing\n",
        "pkg/sub/impl.py": "from pkg.other import x\nthing = x\n",
        "pkg/other.py": "from pkg.sub import thing as x\n",
    })
    assert cycles(import_graph(tmp_path, ("pkg",))) == [
        ["pkg.other", "pkg.sub", "pkg.sub.impl"]]


def test_every_module_has_a_layer() -> None:
    assert [m for m in import_graph(REPO) if layer_of(m) is None] == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    graph = import_graph(REPO)
    wrong = [f"{importer} ({layer_of(importer)}) -> {imported} ({layer_of(imported)}), "
             f"line {line}"
             for importer, targets in sorted(graph.items())
             for imported, line in sorted(targets.items())
             if layer_of(imported) not in MAY_IMPORT[layer_of(importer) or ""]]
    assert wrong == []


def test_the_layer_check_sees_a_driver_that_imports_the_runtime() -> None:
    graph = {"drivers.x": {"gateway.journal": 3, "gateway.core.model": 4}}
    assert [(a, b) for a, targets in graph.items() for b in targets
            if layer_of(b) not in MAY_IMPORT[layer_of(a) or ""]] == [
        ("drivers.x", "gateway.journal")]


EVERY_TRANSPORT = """
site = "c1"
[store]
url = "http://127.0.0.1:8428"
[http]
port = 8080
[[buses]]
id = "rs485"
type = "rtu"
port = "/dev/serial0"
[[devices]]
id = "smoke-1"
kind = "smoke"
transport = "modbus"
profile = "modbus-smoke-detector"
modbus = { bus = "rs485", unit = 1 }
[[devices]]
id = "gate-1"
kind = "temp_gate"
transport = "serial"
profile = "serial-temp-gate"
serial = { port = "/dev/ttyUSB0" }
[[devices]]
id = "gate-2"
kind = "temp_gate"
transport = "http"
profile = "http-temp-gate"
http = { token = "0123456789abcdef" }
[[devices]]
id = "smoke-2"
kind = "smoke"
transport = "mqtt"
profile = "zigbee-smoke"
mqtt = { topic = "zigbee2mqtt/smoke-2" }
[[devices]]
id = "elder-1"
kind = "elder_button"
transport = "gpio"
gpio = { pin = 17 }
"""

_LOAD = """
import json, sys
from pathlib import Path
from gateway.config_file import load_config
config = load_config(Path(sys.argv[1]), env={}, secrets=())
print(json.dumps({"devices": [d.id for d in config.devices],
                  "loaded": sorted(m for m in sys.argv[2:] if m in sys.modules)}))
"""


def test_loading_a_config_loads_no_device_or_network_library(tmp_path: Path) -> None:
    """Profiles of every transport are checked; the libraries of their drivers stay out."""
    file = tmp_path / "gateway.toml"
    file.write_text(EVERY_TRANSPORT)
    done = subprocess.run([sys.executable, "-c", _LOAD, str(file), *DRIVER_LIBRARIES],
                          capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["devices"] == ["smoke-1", "gate-1", "gate-2", "smoke-2", "elder-1"]
    assert result["loaded"] == []
