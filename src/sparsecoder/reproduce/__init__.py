"""``sparsecoder reproduce NAME``: the papers' experiments as one command.

Each experiment is a module of this package (see :mod:`sparsecoder.reproduce.base` for the contract);
:data:`EXPERIMENTS` lists them with what they reproduce and how long they take on 2 CPU cores. The package is
callable: ``sparsecoder.reproduce(...)`` is :func:`reproduce`. The experiments' modules and the report
(:mod:`sparsecoder.reproduce.base`: numpy, matplotlib) are imported when an experiment runs, so that
``sparsecoder reproduce --help`` and ``--list`` stay quick.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import yaml

from sparsecoder.config import absolute_data_path, read_record
from sparsecoder.io import atomic_write_text
from sparsecoder.train.integrity import LOCK_FILE, run_folder_lock
from sparsecoder.util import callable_package, lazy_names

__all__ = ["EXPERIMENTS", "reproduce", "list_experiments"]

# name -> module, paper, figure/table, what it measures, estimated minutes (quick, full) on 2 CPU cores.
EXPERIMENTS: dict[str, dict[str, Any]] = {
    "evtimova-fig6": {
        "module": "evtimova_fig6", "paper": "Evtimova & LeCun 2022", "figure": "Fig. 6 (regret curves)",
        "measures": "PSNR vs sparsity of SDL, SDL-NL, VDL, VDL-NL, WDL, DO over each preset's λ grid × seeds",
        # measured here (one thread per trial): quick 24 s; full: 6 λ × 5 seeds × 200 epochs per variant at
        # ~0.4-0.9 s/epoch (linear), ~1.5 (VDL-NL) and 9-27 s/epoch (SDL-NL, FISTA through the MLP) on
        # the embedded 3,929 digits: ~36 h serial, ~18 h on a 2-trial local Ray
        "minutes": (0.5, 1080)},
    "evtimova-table1": {
        "module": "evtimova_table1", "paper": "Evtimova & LeCun 2022", "figure": "Table 1 (denoising)",
        "measures": "sparsity and PSNR of clean / noisy / denoised MNIST at σ = 1.0, 1.5 (SDL, VDL, -NL)",
        # measured here (busy 2 cores): SDL 2 s, VDL 4 s, VDL-NL 3 s, SDL-NL 60 s per epoch; ×200 ×5 seeds
        "minutes": (1, 1150)},
    "evtimova-fig9": {
        "module": "evtimova_fig9", "paper": "Evtimova & LeCun 2022", "figure": "Fig. 9 (low-data probe)",
        "measures": "top-1 / top-3 test error of a linear probe on frozen codes vs labelled samples per "
                    "class",
        # the 4 presets' λ grids (5 λ each) × 200 epochs, one seed, as above; probes ~30 min
        "minutes": (1, 1200)},
    "evtimova-collapse": {
        "module": "evtimova_collapse", "paper": "Evtimova & LeCun 2022", "figure": "§4.4 (collapse ablation)",
        "measures": "code L1 norm, decoder column norms, dead atoms and PSNR over epochs: no guard vs VDL "
                    "vs SDL",
        # measured here (serial): quick 17 s; 1 seed × 200 epochs 351 s, so 5 seeds ~29 min serial
        "minutes": (0.3, 15)},
    "jiang-table1": {
        "module": "jiang_table1", "paper": "Jiang & de la Iglesia", "figure": "Table 1 (reconstruction MSE)",
        "measures": "test MSE ± std over 50 posterior samples: sparse coding vs SVAE vs SVAE-Norm",
        "minutes": (0.5, 15)},
    "jiang-fig5": {
        "module": "jiang_fig5", "paper": "Jiang & de la Iglesia",
        "figure": "Fig. 5 (active vs noise filters)",
        "measures": "active / noise latents of SVAE and SVAE-Norm, activation-variance and column-norm "
                    "histograms, filter grids",
        "minutes": (0.5, 12)},
    "pyle-priors": {
        "module": "pyle_priors", "paper": "Pyle", "figure": "prior comparison",
        "measures": "Gaussian vs Laplace vs Cauchy prior/posterior: ELBO, reconstruction, near-zero "
                    "posterior means, dictionary recovery on synthetic patches, latent pictures",
        "minutes": (1, 60)},
}


def _minutes(value: Any) -> str:
    return "?" if value is None else f"~{value:g} min"


def list_experiments() -> list[dict[str, Any]]:
    """One dict per experiment: name, paper, figure, measures, quick and full estimated time."""
    return [{"name": name, "paper": e["paper"], "figure": e["figure"], "measures": e["measures"],
             "quick": _minutes(e["minutes"][0]), "full": _minutes(e["minutes"][1])}
            for name, e in EXPERIMENTS.items()]


def _module(name: str):
    if name not in EXPERIMENTS:
        from sparsecoder.reproduce.settings import did_you_mean

        raise ValueError(f"unknown experiment {name!r};{did_you_mean(name, EXPERIMENTS)} the experiments are "
                         f"{', '.join(EXPERIMENTS)} (sparsecoder reproduce --list)")
    return importlib.import_module(f"sparsecoder.reproduce.{EXPERIMENTS[name]['module']}")


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``key: A there, B now`` for each entry (and setting) of two experiment records that differs: a
    changed --data-dir alone used to be refused with two identical-looking settings dicts."""
    out = []
    old_settings = old.get("settings") if isinstance(old.get("settings"), dict) else {}
    for key in dict.fromkeys([*old, *new]):
        if key == "settings" and isinstance(old.get(key), dict):
            for name in dict.fromkeys([*old_settings, *new["settings"]]):
                if old_settings.get(name) != new["settings"].get(name):
                    out.append(f"{name}: {old_settings.get(name)!r} there, {new['settings'].get(name)!r} now")
        elif old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)!r} there, {new.get(key)!r} now")
    return "; ".join(out)


def _check_folder(out: Path, record: dict[str, Any]) -> None:
    """Refuse a folder that holds something else than this experiment with these settings."""
    from sparsecoder.reproduce.base import SETTINGS_FILE

    path = out / SETTINGS_FILE
    if path.is_file():
        old = read_record(path, {"experiment": str},
                          f"it records the experiment run in {out}: restore it, or choose a new --out")
        if old != record:
            raise ValueError(f"{out} holds `reproduce {old.get('experiment')}` with profile "
                             f"{old.get('profile')} and settings {old.get('settings')}; this call asks for "
                             f"{record['experiment']} ({record['profile']}) with {record['settings']} "
                             f"(differs in {_differences(old, record)}). "
                             f"Repeat the same flags to resume it, or choose a new --out")
    elif any(p.name != LOCK_FILE for p in out.iterdir()):
        raise FileExistsError(f"{out} is not empty and holds no {SETTINGS_FILE}; choose a new --out")


def _recorded_relative_data_dir(out: Path) -> list[str]:
    """The relative ``data_dir`` that ``out``'s record holds (written by an older version, which recorded it
    as given; its trials hold the same text), or none; a damaged record is named by :func:`_check_folder`."""
    from sparsecoder.reproduce.base import SETTINGS_FILE

    try:
        data_dir = read_record(out / SETTINGS_FILE, {}, "").get("data_dir")
    except (OSError, ValueError):
        return []
    return [data_dir] if absolute_data_path(data_dir) != data_dir else []


def reproduce(name: str, out: str | Path, *, quick: bool = False, data_dir: str | None = None,
              address: str | None = None, overrides: dict[str, Any] | list[str] | None = None,
              executor: str = "ray", max_concurrent: int | None = None, progress: bool = True,
              retry_failed: bool = False) -> dict:
    """Run experiment ``name`` into ``out``: ``results.md``, ``results.csv``, PNG figures and the trial run
    folders (``out/trials/...``). Rerunning the same call skips finished trials and resumes the rest.

    Parameters
    ----------
    name : str
        One of :data:`EXPERIMENTS` (``sparsecoder reproduce --list``).
    quick : bool
        The tiny profile of the same protocol (for tests; minutes); default the paper's protocol.
    data_dir : str, optional
        User-supplied full data (as ``--set data_dir=...`` of ``train``); embedded data otherwise.
    address : str, optional
        Join a Ray cluster for the trials (see :func:`sparsecoder.sweep.sweep`); default a local Ray.
    overrides : dict or list of "KEY=VALUE", optional
        Settings of the experiment's profile to change (``--set``); unknown keys are an error.
    executor : {"ray", "serial"}
        ``"serial"`` trains the trials one after the other in this process (no Ray).
    retry_failed : bool
        Train the trials recorded as failed or diverged again (a rerun skips them otherwise).

    Returns
    -------
    dict
        ``{"files": [...], "rows": [...], "directory": Path, "unfinished": [...], "foreign": [...],
        "damaged": [...], "lost": [...]}``; ``unfinished`` names each trial that failed, diverged or was
        lost (``"run folder: status: message"``; results.md lists them too); ``foreign`` those of them whose
        folder holds a finished run that is not the trial's (move the folder away and rerun), ``damaged``
        those whose own finished run has an unreadable ``metrics.json`` (move that file away and rerun: the
        run is measured again); ``retry_failed`` leaves both as they are. ``lost`` those whose Ray worker
        died, which a rerun resumes.
    """
    from sparsecoder.reproduce.base import SETTINGS_FILE, Context, check_trials, parse_settings, write_report
    from sparsecoder.sweep.run import check_data_dirs, check_executor

    module = _module(name)
    info = EXPERIMENTS[name]
    out = Path(out)
    # a relative --data-dir is recorded as the absolute path it names from here (as train's --set data_dir):
    # the trials are evaluated from any folder, and a rerun from another folder, where the same text names
    # other data, is refused as other settings; an experiment recorded with it relative keeps it
    data_dir = absolute_data_path(data_dir, keep=_recorded_relative_data_dir(out))
    check_executor(executor, address, max_concurrent)  # the trials' sweeps would refuse it after the write
    check_data_dirs([data_dir], address)
    settings = parse_settings(module.QUICK if quick else module.FULL, overrides, name)
    if hasattr(module, "check_settings"):  # the experiment's own checks of its values, before any write
        module.check_settings(settings)
    if hasattr(module, "check_data"):  # checks needing the data loaded (class sizes), still before any write
        module.check_data(settings, data_dir)
    # every trial's config, data and size, still before any write: each experiment gives its trials as
    # sweeps(settings), which its run trains (two did not, and their bad settings failed after the write)
    check_trials(module.sweeps(settings), data_dir, address)
    record = {"experiment": name, "profile": "quick" if quick else "full", "settings": settings,
              "data_dir": data_dir}
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    with run_folder_lock(out, "reproduce", create=True):  # one command per folder at a time
        _check_folder(out, record)
        atomic_write_text(out / SETTINGS_FILE, yaml.safe_dump(record, sort_keys=False))
        ctx = Context(name=name, out=out, quick=quick, settings=settings, data_dir=data_dir, address=address,
                      executor=executor, max_concurrent=max_concurrent, progress=progress,
                      retry_failed=retry_failed)
        start = time.perf_counter()
        report = module.run(ctx)
        files = write_report(ctx, info, report, time.perf_counter() - start)
    return {"files": files, "rows": report.rows, "directory": out, "unfinished": ctx.unfinished,
            "foreign": ctx.foreign, "damaged": ctx.damaged, "lost": ctx.lost}


__getattr__, __dir__ = lazy_names(__name__, {})  # its modules as attributes on first use (sparsecoder.util)
callable_package(__name__)  # sparsecoder.reproduce(...) calls reproduce; the name stays this package
