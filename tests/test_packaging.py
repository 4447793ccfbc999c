"""What `pip install sparsecoder` (a wheel or sdist, not the developers' `pip install -e .`) gets: the
declared dependencies cover every import, the package data cover every file the code reads, the metadata
are written once. Nothing here builds a distribution (too slow for the default suite)."""

import ast
import fnmatch
import functools
import importlib.metadata
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "sparsecoder"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# APIs of a dependency that appeared in a known release: the declared lower bound must be at least that
# (the import fails on anything older, after pip was satisfied). Extend when importing a newer API.
NEEDS_VERSION = {
    ("sklearn.utils.validation", "validate_data"): ("scikit-learn", "1.6"),
}


@functools.cache
def _imports() -> frozenset:
    """(module, imported name or None) of every absolute import in src/sparsecoder."""
    return frozenset(_walk_imports())


def _walk_imports():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield from ((alias.name, None) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                yield from ((node.module, alias.name) for alias in node.names)


def _requirements():
    project = PYPROJECT["project"]
    listed = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        listed += extra
    return [Requirement(r) for r in listed]


def _declared_distributions() -> set[str]:
    """The dependencies and extras of pyproject.toml, plus what a requested extra of one adds
    (``ray[client]`` brings grpcio): not the dependencies' own plain dependencies."""
    names = set()
    for req in _requirements():
        names.add(canonicalize_name(req.name))
        if not req.extras:
            continue
        for spec in importlib.metadata.requires(req.name) or []:
            sub = Requirement(spec)
            if sub.marker is not None and "extra" in str(sub.marker) and any(
                    sub.marker.evaluate({"extra": extra}) for extra in req.extras):
                names.add(canonicalize_name(sub.name))
    return names


def test_every_third_party_import_is_a_declared_dependency():
    # audit 2026-11-29: inference/lasso.py imports joblib, which was only there because scikit-learn
    # happens to depend on it
    providers = importlib.metadata.packages_distributions()
    declared = _declared_distributions()
    missing = {}
    for module, _ in _imports():
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top == "sparsecoder":
            continue
        dists = {canonicalize_name(d) for d in providers.get(top, [top])}
        if not dists & declared:
            missing[top] = sorted(dists)
    assert not missing, f"imported by src/ but not declared in pyproject.toml: {missing}"


def test_lower_bounds_cover_the_apis_used():
    # audit 2026-11-29: estimators.py imports validate_data (scikit-learn 1.6) while pyproject allowed 1.3:
    # `import sparsecoder` failed on scikit-learn 1.3-1.5 after pip had accepted them
    minimum = {}
    for req in _requirements():
        bounds = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
        minimum[canonicalize_name(req.name)] = max(bounds, default=None)
    for module, name in _imports():
        if (module, name) in NEEDS_VERSION:
            dist, since = NEEDS_VERSION[module, name]
            found = minimum.get(canonicalize_name(dist))
            assert found is not None and found >= Version(since), \
                f"{module}.{name} needs {dist}>={since}; pyproject.toml allows {dist} {found}"


def test_every_data_file_of_the_package_is_package_data():
    """A file in src/sparsecoder that is not Python (the presets) ships only if a package-data glob names it;
    an editable install reads it from the checkout either way: the omission shows only after pip install."""
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["sparsecoder"]
    data = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data, "the presets are package data"
    unmatched = [f for f in data if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert not unmatched, f"not in [tool.setuptools.package-data] {globs}: {unmatched}"


def test_version_is_written_once():
    # audit 2026-11-29: pyproject.toml and sparsecoder/__init__.py each wrote "0.1.0"
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sparsecoder.__version__"}


def test_license_is_shipped_and_buildable():
    # audit 2026-11-29: license = "MIT" without a LICENSE file (MIT requires its text with the copies), and
    # a build-system setuptools>=68 although setuptools before 77 rejects a license string (PEP 639)
    project = PYPROJECT["project"]
    files = project["license-files"]
    assert all(list(ROOT.glob(pattern)) for pattern in files), f"license-files {files} match no file"
    if isinstance(project["license"], str):
        setuptools = next(Requirement(r) for r in PYPROJECT["build-system"]["requires"]
                          if canonicalize_name(Requirement(r).name) == "setuptools")
        lowest = min(Version(s.version) for s in setuptools.specifier if s.operator == ">=")
        assert lowest >= Version("77"), f"license = {project['license']!r} needs setuptools>=77, not {lowest}"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_installed_copy_inside_a_user_repository_records_no_git_commit(tmp_path):
    # audit 2026-11-29: installed in a virtual environment inside the user's own git project (ignored by it),
    # a run's metrics.json recorded the user's project commit as the library's git_hash
    from sparsecoder.train.trainer import _git_state

    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / ".gitignore").write_text(".venv/\n")
    installed = tmp_path / ".venv" / "site-packages" / "sparsecoder"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    subprocess.run([*git, "add", ".gitignore"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "user project"], check=True)
    assert _git_state(installed) == (None, None)
    # a checkout of the library itself still records its commit
    checkout = tmp_path / "src" / "sparsecoder"
    checkout.mkdir(parents=True)
    (checkout / "__init__.py").write_text("")
    subprocess.run([*git, "add", "src"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "library"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    assert _git_state(checkout) == (head.strip(), False)


def test_drawing_pictures_leaves_the_callers_matplotlib_alone(tmp_path):
    # audit 2026-11-29: sparsecoder.viz ran matplotlib.use("Agg") at import (and sweep/reproduce plots did
    # too): a notebook calling sparsecoder.train lost its inline backend once the run's pictures were drawn
    import importlib

    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np

    import sparsecoder.viz as viz

    before = matplotlib.get_backend()
    plt.switch_backend("svg")  # a backend of the caller's (in a notebook: the inline one)
    try:
        figures = plt.get_fignums()
        importlib.reload(viz)  # the import side effect, whichever test imported it first
        viz.atom_grid(np.random.default_rng(0).random((16, 4)), (4, 4), tmp_path / "atoms.png")
        assert (tmp_path / "atoms.png").stat().st_size > 0
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == figures
    finally:
        plt.switch_backend(before)
    # every module draws through viz.subplots: none selects a backend or registers figures with pyplot
    pyplot = {("matplotlib.pyplot", None), ("matplotlib", "pyplot")}
    assert not pyplot & _imports(), "src/ imports matplotlib.pyplot"
    assert not [p for p in PACKAGE.rglob("*.py") if "matplotlib.use(" in p.read_text()]


@pytest.mark.parametrize("command", ["sweep", "reproduce"])
def test_sweep_without_ray_installed_names_the_fix_before_any_work(tmp_path, monkeypatch, command):
    # audit 2026-11-29: with Ray missing (pip install --no-deps) a sweep wrote nothing useful and ended in
    # "error: ModuleNotFoundError: No module named 'ray' (unexpected; ... report it)"
    import sparsecoder

    monkeypatch.setitem(sys.modules, "ray", None)  # find_spec / import see no Ray
    out = tmp_path / "out"
    fix = r"Ray, which is not installed.*pip install 'ray\[client\]==2.60.0'.*--serial"
    with pytest.raises(ValueError, match=fix):
        if command == "sweep":
            sparsecoder.sweep("vae-gauss-synthetic", out, overrides=["epochs=1"], progress=False)
        else:
            sparsecoder.reproduce("evtimova-collapse", out, quick=True, progress=False)
    assert not out.exists()


HEAVY_MODULES = ("torch", "sklearn", "numba", "scipy", "matplotlib", "ray")

# Every command's --help (sub-commands of sub-commands too), --version, and argparse's usage errors, in one
# process; then which heavy libraries it imported.
_CLI_WITHOUT_HEAVY_IMPORTS = f"""
import argparse, json, sys
import sparsecoder
heavy = {HEAVY_MODULES!r}
after_import = sorted(m for m in heavy if m in sys.modules)
from sparsecoder import cli

def commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from commands(sub, (*prefix, name))

lines = [["--help"], ["--version"], ["no-such-command"], ["train"], ["train", "p", "--out", "o", "--bogus"]]
lines += [[*command, "--help"] for command in commands(cli.build_parser())]
for argv in lines:
    sys.argv = ["sparsecoder", *argv]
    try:
        cli.main()
    except SystemExit:
        pass
print("RESULT", json.dumps({{"lines": lines, "import": after_import,
                            "cli": sorted(m for m in heavy if m in sys.modules)}}), file=sys.stderr)
"""


def test_help_version_and_usage_errors_import_no_heavy_library():
    # audit 2026-11-29: `sparsecoder --help` took 5-8 s: `import sparsecoder` imported every subpackage
    # (torch, scikit-learn with scipy.stats, numba, matplotlib), and so did each sub-command's package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _CLI_WITHOUT_HEAVY_IMPORTS], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stderr.rpartition("RESULT ")[2])
    assert ["data", "show", "--help"] in result["lines"] and ["reproduce", "--help"] in result["lines"]
    assert result["import"] == [], f"`import sparsecoder` imported {result['import']}"
    assert result["cli"] == [], f"--help, --version or a usage error imported {result['cli']}"


# `sparsecoder presets` and `sparsecoder data list` in one process, each one's output, then which heavy
# libraries they imported.
_LISTINGS_WITHOUT_HEAVY_IMPORTS = f"""
import contextlib, io, json, sys
from sparsecoder import cli
heavy = {HEAVY_MODULES!r}
out = {{}}
for argv in (["presets"], ["data", "list"]):
    with contextlib.redirect_stdout(io.StringIO()) as text:
        code = cli.main(argv)
    out[" ".join(argv)] = [code, text.getvalue()]
heavy = sorted(m for m in heavy if m in sys.modules)
print("RESULT", json.dumps({{"out": out, "heavy": heavy}}), file=sys.stderr)
"""


def test_listing_presets_and_data_sources_imports_no_heavy_library():
    # audit 2026-11-29: `sparsecoder presets` and `sparsecoder data list` took 3-6 s: the config classes were
    # defined next to the models' torch code, and every data source module imported torch at the top
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _LISTINGS_WITHOUT_HEAVY_IMPORTS], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stderr.rpartition("RESULT ")[2])
    (code, presets), (data_code, sources) = result["out"]["presets"], result["out"]["data list"]
    assert code == 0 and data_code == 0, done.stderr
    assert "vdl-nl-mnist" in presets and "vae-laplace-mnist2d" in presets
    assert sources.startswith("mnist ") and "whitened_patches" in sources
    assert "options: n_train=20000" in sources
    assert result["heavy"] == [], f"`sparsecoder presets` or `data list` imported {result['heavy']}"


# The public API as `sparsecoder/__init__.py` imported it eagerly: name -> (defining module, attribute; None:
# the module itself). Its names are imported on first use now, and must stay these same objects.
PUBLIC_API = {
    "FistaResult": ("sparsecoder.inference", "FistaResult"),
    "MiniBatchDictionaryLearning": ("sparsecoder.estimators", "MiniBatchDictionaryLearning"),
    "SAE": ("sparsecoder.estimators", "SAE"),
    "SparseAutoencoder": ("sparsecoder.models.sparse_autoencoder", "SparseAutoencoder"),
    "SparseAutoencoderConfig": ("sparsecoder.models.sparse_autoencoder", "SparseAutoencoderConfig"),
    "SparseCoder": ("sparsecoder.estimators", "SparseCoder"),
    "SparseVAE": ("sparsecoder.estimators", "SparseVAE"),
    "VAE": ("sparsecoder.models.vae", "VAE"),
    "VAEConfig": ("sparsecoder.models.vae", "VAEConfig"),
    "decode_run": ("sparsecoder.train.run", "decode_run"),
    "encode_run": ("sparsecoder.train.run", "encode_run"),
    "evaluate_run": ("sparsecoder.train.run", "evaluate_run"),
    "fista": ("sparsecoder.inference.fista", "fista"),
    "load_data": ("sparsecoder.data.registry", "load"),
    "load_preset": ("sparsecoder.config", "load_preset"),
    "load_run": ("sparsecoder.train.run", "load_run"),
    "reproduce": ("sparsecoder.reproduce", None),
    "sparse_encode": ("sparsecoder.inference.lasso", "sparse_encode"),
    "sweep": ("sparsecoder.sweep", None),
    "train": ("sparsecoder.train", None),
    "__version__": ("sparsecoder", "__version__"),
}


def test_every_public_name_is_the_object_of_its_defining_module():
    # the lazy `__getattr__` of sparsecoder and of its packages (util.lazy_names) must give what the eager
    # imports gave: `from sparsecoder import X` and `sparsecoder.X`, the callable packages included
    import importlib

    import sparsecoder

    assert sorted(sparsecoder.__all__) == sorted(PUBLIC_API)
    for name, (module, attribute) in PUBLIC_API.items():
        defined = importlib.import_module(module)
        if attribute is not None:
            defined = getattr(defined, attribute)
        assert getattr(sparsecoder, name) is defined, name
        assert name in dir(sparsecoder)
    namespace = {}
    exec("from sparsecoder import *", namespace)
    assert all(namespace[name] is getattr(sparsecoder, name) for name in sparsecoder.__all__)
    # the subpackages' own names: each is the object of the same name where it is defined
    for package in ("sparsecoder.data", "sparsecoder.train", "sparsecoder.sweep", "sparsecoder.reproduce",
                    "sparsecoder.inference"):
        package = importlib.import_module(package)
        for name in package.__all__:
            value = getattr(package, name)
            defined = getattr(value, "__module__", package.__name__)  # a constant: the package's own
            assert getattr(importlib.import_module(defined), name) is value, (package, name)
    # the packages stay callable as their function, and their modules reachable
    import sparsecoder.train.run as run
    from sparsecoder.train.trainer import train

    assert sparsecoder.train.run is run and sparsecoder.train.train is train
    assert inspect.signature(sparsecoder.train) == inspect.signature(train)
    assert callable(sparsecoder.sweep) and callable(sparsecoder.reproduce)
    assert sparsecoder.viz is importlib.import_module("sparsecoder.viz")  # a module not imported yet
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        sparsecoder.no_such_name  # noqa: B018
