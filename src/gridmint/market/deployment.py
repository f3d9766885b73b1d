"""Deployment files: YAML that says what to run and what it needs, validated with errors that point at the line.

    version: 1
    services:
      web:
        command: ["python", "-m", "http.server", "8080"]   # or  image: nginx:1.27
        env: {GREETING: hello}
        ports: [8080]
    resources:
      cpu: 0.5            # cores
      memory: 512         # MB
      gpu: {units: 1, models: [A100, H100], min_vram_gb: 40}
    price:
      max_per_block: 0.001   # MINT
    deposit: 5               # MINT

The manifest (the services) is what the provider receives; its SHA-256 over canonical JSON goes on chain with the
order, so the provider can check that what it is asked to run is what the tenant ordered.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from gridmint.chain.errors import register
from gridmint.client.amounts import parse_mint

INVALID_DEPLOYMENT = register("deploy", 1, "invalid_deployment")
INVALID_MANIFEST = register("deploy", 2, "invalid_manifest")

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ENV_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_SERVICES = 16
MAX_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Service:
    name: str
    image: str | None
    command: list[str] | None
    env: dict[str, str]
    ports: list[int]


@dataclass(frozen=True)
class Deployment:
    services: list[Service]
    cpu_millis: int
    memory_mb: int
    gpu_units: int
    gpu_models: list[str]
    min_vram_gb: int
    max_price: int  # grains per block
    deposit: int  # grains
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest_hash(self) -> bytes:
        return manifest_hash(self.manifest)


def manifest_hash(manifest: dict[str, Any]) -> bytes:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).digest()


class _Marked:
    """The YAML tree as plain values, remembering the line of every path for error messages."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        self._scalars = yaml.SafeLoader("")  # turns a resolved scalar node into its Python value
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise INVALID_DEPLOYMENT(f"{where}not valid YAML ({getattr(error, 'problem', error)})") from None
        if node is None:
            raise INVALID_DEPLOYMENT("line 1: the deployment file is empty")
        self.value = self._convert(node, ())

    def _convert(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                result[key] = self._convert(value_node, (*path, key))
                self.lines[(*path, key)] = key_node.start_mark.line + 1  # point at the key, not its value
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalars.construct_object(node)

    def error(self, path: tuple[Any, ...], message: str) -> Exception:
        line = next((self.lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in self.lines), 1)
        where = ".".join(str(p) for p in path) or "the file"
        return INVALID_DEPLOYMENT(f"line {line}: {where}: {message}")


def _number(marked: _Marked, path: tuple[Any, ...], value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise marked.error(path, f"expected {what} from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _mint(marked: _Marked, path: tuple[Any, ...], value: Any) -> int:
    try:
        grains = parse_mint(str(value))
    except ValueError as exc:
        raise marked.error(path, str(exc)) from None
    if grains <= 0:
        raise marked.error(path, "expected a positive amount of MINT")
    return grains


def parse_deployment(text: str) -> Deployment:
    if len(text.encode()) > MAX_FILE_BYTES:
        raise INVALID_DEPLOYMENT(f"the deployment file is larger than {MAX_FILE_BYTES} bytes")
    marked = _Marked(text)
    doc = marked.value
    if not isinstance(doc, dict):
        raise marked.error((), "expected a mapping with version, services, resources, price and deposit")
    unknown = sorted(set(doc) - {"version", "services", "resources", "price", "deposit"})
    if unknown:
        raise marked.error((unknown[0],), "unknown section; expected version, services, resources, price, deposit")
    if doc.get("version") != 1:
        raise marked.error(("version",), "expected version: 1")
    services_raw = doc.get("services")
    if not isinstance(services_raw, dict) or not 0 < len(services_raw) <= MAX_SERVICES:
        raise marked.error(("services",), f"expected 1 to {MAX_SERVICES} services")
    services = [_service(marked.error, name, spec) for name, spec in services_raw.items()]
    resources = doc.get("resources")
    if not isinstance(resources, dict):
        raise marked.error(("resources",), "expected cpu, memory and optionally gpu")
    cpu = _number(marked, ("resources", "cpu"), resources.get("cpu"), "CPU cores", 0.001, 1024)
    memory = _number(marked, ("resources", "memory"), resources.get("memory"), "memory in MB", 1, 16_777_216)
    gpu = resources.get("gpu") or {}
    if not isinstance(gpu, dict):
        raise marked.error(("resources", "gpu"), "expected {units, models, min_vram_gb}")
    units = int(_number(marked, ("resources", "gpu", "units"), gpu.get("units", 0), "GPU units", 0, 64))
    models = gpu.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models) or len(models) > 16:
        raise marked.error(("resources", "gpu", "models"), "expected a list of GPU model names such as [A100, H100]")
    vram = int(_number(marked, ("resources", "gpu", "min_vram_gb"), gpu.get("min_vram_gb", 0), "VRAM in GB", 0, 4096))
    price = doc.get("price")
    if not isinstance(price, dict) or "max_per_block" not in price:
        raise marked.error(("price",), "expected max_per_block (MINT per block)")
    max_price = _mint(marked, ("price", "max_per_block"), price["max_per_block"])
    deposit = _mint(marked, ("deposit",), doc.get("deposit"))
    if deposit < max_price:
        raise marked.error(("deposit",), "the deposit must cover at least one block at the max price")
    manifest = {"version": 1, "services": {s.name: {"image": s.image, "command": s.command, "env": s.env,
                                                   "ports": s.ports} for s in services}}
    return Deployment(services, round(cpu * 1000), round(memory), units, models, vram, max_price, deposit, manifest)


ErrorAt = Callable[[tuple[Any, ...], str], Exception]


def _service(error: ErrorAt, name: str, spec: Any) -> Service:
    path = ("services", name)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise error(path, "a service name is lower-case letters, digits and '-'")
    if not isinstance(spec, dict) or set(spec) - {"image", "command", "env", "ports"}:
        raise error(path, "expected image or command, and optionally env and ports")
    image, command = spec.get("image"), spec.get("command")
    if (image is None) == (command is None):
        raise error(path, "give exactly one of image or command")
    if image is not None and (not isinstance(image, str) or not 0 < len(image) <= 256):
        raise error((*path, "image"), "expected an image name such as nginx:1.27")
    if command is not None and (not isinstance(command, list) or not 0 < len(command) <= 256
                                or not all(isinstance(part, str) and len(part) <= 4096 for part in command)):
        raise error((*path, "command"), "expected a list of strings, such as [python, app.py]")
    env = spec.get("env") or {}
    if not isinstance(env, dict) or len(env) > 256 or not all(isinstance(k, str) and ENV_PATTERN.match(k)
                                                               for k in env):
        raise error((*path, "env"), "expected a mapping of variable names (letters, digits, _) to values")
    ports = spec.get("ports") or []
    if not isinstance(ports, list) or len(ports) > 16 or \
            not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65_535 for p in ports):
        raise error((*path, "ports"), "expected a list of port numbers from 1 to 65535")
    return Service(name, image, command, {k: str(v) for k, v in env.items()}, ports)


def _manifest_error(path: tuple[Any, ...], message: str) -> Exception:
    where = ".".join(str(p) for p in path) or "the manifest"
    return INVALID_MANIFEST(f"{where}: {message}")


def parse_manifest(manifest: Any) -> list[Service]:
    """The services of a manifest as a provider receives it (JSON), checked like the deployment file was."""
    if not isinstance(manifest, dict) or manifest.get("version") != 1 or set(manifest) != {"version", "services"}:
        raise INVALID_MANIFEST("expected a manifest {version: 1, services: {...}}")
    services = manifest["services"]
    if not isinstance(services, dict) or not 0 < len(services) <= MAX_SERVICES:
        raise INVALID_MANIFEST(f"expected 1 to {MAX_SERVICES} services")
    return [_service(_manifest_error, name, spec) for name, spec in services.items()]
