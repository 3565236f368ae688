"""Run the study's notebooks in order with papermill, under a named parameter profile.

The order is the notebooks' numbers, except that a notebook runs after those whose results it reads
(:data:`fer_utils.experiments.READS`): the results summary, 06, runs after notebook 08, so that its
table holds every model.

    fer-study                                   # default profile (reference), into runs/reference
    fer-study --data ~/data/fer2013.csv         # a copy of FER-2013 elsewhere (else FER2013_DIR)
    fer-study --skip-finished                   # continue it after an interruption
    fer-study --status                          # where it stands (runs nothing)
    fer-study --profile smoke                   # CI's profile, into runs/smoke
    fer-study --profile full --run-dir runs/gpu -p epochs=60 --only 01
    fer-study --profile gpu --backend jax --jobs 4   # a GPU machine

Each notebook is executed into ``<run dir>/notebooks/``; metrics, figures and
models land in the run directory. Parameter names are checked against each
notebook's ``parameters`` cell before anything runs: an unknown name is an error.
While a notebook runs, the runner prints a line for every epoch a training finishes, with the
time its cap still allows (:mod:`fer_study.progress`). On a failure the runner stops
and prints the path of the executed notebook that holds the error. With ``--jobs N``, up to N
notebooks run at once, each as soon as the notebooks whose results it reads (:data:`READS`) have
finished.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
import tomllib
from pathlib import Path

from fer_utils.data import DATA_ENV, repo_root
from fer_utils.device import BACKENDS
from fer_utils.experiments import READS
from fer_utils.notebook import resolve, shown
from fer_utils.verify import MODES, VERIFY_ENV

from .notebooks import StudyError, finished_already, notebooks, papermill_record, parameter_names

PROFILES_FILE = Path(__file__).with_name("profiles.toml")
DEFAULT_PROFILE = "reference"
KERNEL = "python3"


def load_profiles(path: str | os.PathLike = PROFILES_FILE) -> dict:
    """All profiles from the TOML file."""
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def parameters_for(profile: str, notebook: Path, overrides: dict[str, object],
                   profiles: dict | None = None) -> dict[str, object]:
    """The parameters one notebook gets: profile common, then its own section, then overrides.

    Overrides (from ``-p name=value``) go only to notebooks that declare the name; a
    name no notebook declares is caught by :func:`plan`.
    """
    profiles = profiles if profiles is not None else load_profiles()
    if profile not in profiles:
        raise StudyError(f"unknown profile {profile!r}; choose one of {', '.join(sorted(profiles))}")
    spec = profiles[profile]
    declared = parameter_names(notebook)
    params = {**spec.get("common", {}), **spec.get(notebook.stem, {})}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise StudyError(
            f"profile {profile!r} sets {', '.join(unknown)} for {notebook.name}, "
            f"whose parameters cell declares only {', '.join(sorted(declared))}"
        )
    params.update({k: v for k, v in overrides.items() if k in declared})
    return params


def parse_override(text: str) -> tuple[str, object]:
    """``name=value`` with value read as a Python literal (falls back to a string)."""
    if "=" not in text:
        raise StudyError(f"-p expects name=value, got {text!r}")
    name, raw = text.split("=", 1)
    name = name.strip()
    if not name.isidentifier():
        raise StudyError(f"-p: {name!r} is not a parameter name")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name, value


def plan(profile: str, run_dir: Path, overrides: dict[str, object], only: list[str] | None = None,
         notebook_dir: str | os.PathLike | None = None,
         data: str | os.PathLike | None = None) -> list[tuple[Path, Path, dict]]:
    """Check everything before running: ``[(notebook, executed copy, parameters), ...]`` in the order
    they run (:func:`in_reading_order`). ``data``: the FER-2013 copy every notebook that declares
    ``data_dir`` reads (an absolute path); None leaves the notebooks' default (``FER2013_DIR``)."""
    chosen = notebooks(notebook_dir)
    if only:
        chosen = [nb for nb in chosen if any(nb.name.startswith(o) for o in only)]
        if not chosen:
            raise StudyError(f"--only {','.join(only)} matches no notebook")
    declared_anywhere: set[str] = set()
    steps = []
    for nb in chosen:
        declared = parameter_names(nb)
        declared_anywhere |= set(declared)
        params = parameters_for(profile, nb, overrides)
        if "run_dir" in declared:
            params["run_dir"] = shown(run_dir)
        if data is not None and "data_dir" in declared:
            params["data_dir"] = str(data)
        steps.append((nb, run_dir / "notebooks" / nb.name, params))
    unknown = sorted(set(overrides) - declared_anywhere)
    if unknown:
        raise StudyError(f"-p {', '.join(unknown)}: no notebook of this run declares that parameter")
    return in_reading_order(steps)


def _relative_paths_in_metadata(notebook: Path) -> None:
    """Papermill records absolute input/output paths; keep only repository-relative ones."""
    import nbformat

    if not notebook.exists():
        return
    nb = nbformat.read(notebook, as_version=4)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            meta[key] = shown(meta[key])
    tmp = notebook.with_name(f".{notebook.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, notebook)


def _only_expected_errors(executed: Path) -> bool:
    """Whether every error in an executed notebook comes from a cell tagged ``raises-exception``
    (then papermill's error banner cells are removed from it)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    errors = [c for c in nb.cells if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    if not errors or any("raises-exception" not in c.metadata.get("tags", []) for c in errors):
        return False
    nb.cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    nbformat.write(nb, executed)
    return True


def _ended(executed: Path) -> str:
    """When an executed notebook finished (papermill's ISO ``end_time``), or "" when it has not."""
    try:
        return str(papermill_record(json.loads(executed.read_text())).get("end_time") or "")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return ""


def in_reading_order(steps: list[tuple[Path, Path, dict]]) -> list[tuple[Path, Path, dict]]:
    """``steps`` (in number order) reordered so that each comes after the steps it reads (:data:`READS`):
    the lowest-numbered step whose reads have all been placed goes next. Notebooks outside the run
    (``--only``) are not waited for. Raises StudyError if READS makes that impossible (a cycle)."""
    present = {nb.stem[:2] for nb, _, _ in steps}
    remaining, ordered, placed = list(steps), [], set()
    while remaining:
        for step in remaining:
            reads = READS.get(step[0].stem[:2]) or ()
            if {r for r in reads if r in present} <= placed:
                break
        else:
            raise StudyError("READS leaves no order to run these notebooks in: "
                             + ", ".join(nb.stem for nb, _, _ in remaining))
        remaining.remove(step)
        ordered.append(step)
        placed.add(step[0].stem[:2])
    return ordered


def prerequisites(steps: list[tuple[Path, Path, dict]]) -> dict[str, set[str]]:
    """For each notebook of ``steps`` (by stem), the stems of the notebooks of ``steps`` it must wait
    for under :data:`READS` (notebooks left out of the run, with ``--only``, are not waited for)."""
    stems = [nb.stem for nb, _, _ in steps]
    needs: dict[str, set[str]] = {}
    for i, stem in enumerate(stems):
        reads = READS.get(stem[:2])
        earlier = stems[:i]
        needs[stem] = set(earlier) if reads is None else {s for s in earlier if s[:2] in reads}
    return needs


def _execute(nb: Path, out: Path, params: dict, timeout_per_cell: int | None) -> tuple[str, float, str]:
    """Execute one notebook; returns (outcome, seconds, detail) with outcome ``done``, ``exercises``
    (a student copy whose unanswered exercises raised, as they should) or ``failed``."""
    import papermill as pm

    started = time.perf_counter()
    try:
        pm.execute_notebook(
            str(nb), str(out), parameters=params, kernel_name=KERNEL,
            cwd=str(nb.parent), execution_timeout=timeout_per_cell,
            progress_bar=False, log_output=False, report_mode=False,
        )
    except pm.PapermillExecutionError as exc:
        _relative_paths_in_metadata(out)
        if _only_expected_errors(out):  # a student copy: its exercise stubs raise, on purpose
            return "exercises", time.perf_counter() - started, ""
        return "failed", time.perf_counter() - started, f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # noqa: BLE001 - the kernel died or timed out: one line, not a traceback
        _relative_paths_in_metadata(out)
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return "failed", time.perf_counter() - started, f"{type(exc).__name__}: {first_line}"
    _relative_paths_in_metadata(out)
    return "done", time.perf_counter() - started, ""


def _report(tag: str, nb: Path, out: Path, outcome: str, seconds: float, detail: str) -> bool:
    """Print one notebook's outcome; True unless it failed."""
    if outcome == "failed":
        print(f"{tag} {nb.stem} FAILED in {detail}", file=sys.stderr)
        print(f"  the executed notebook with the error: {shown(out)}", file=sys.stderr)
        return False
    extra = ", its unanswered exercises raising \"Your turn\"" if outcome == "exercises" else ""
    print(f"{tag} {nb.stem} done in {seconds:.0f} s{extra} -> {shown(out)}", flush=True)
    return True


def _run_parallel(steps: list[tuple[Path, Path, dict]], jobs: int, timeout_per_cell: int | None,
                  skip: set[str]) -> bool:
    """Run ``steps`` with up to ``jobs`` kernels at once, each notebook once its prerequisites are done.
    Returns False after a failure (no new notebook starts then; the running ones finish)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    # Several kernels share one GPU: each takes memory as it needs it instead of most of the card.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    needs = prerequisites(steps)
    index = {nb.stem: i for i, (nb, _, _) in enumerate(steps, start=1)}
    finished = set(skip)
    waiting = [step for step in steps if step[0].stem not in skip]
    running: dict = {}
    ok = True
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while waiting or running:
            while ok and len(running) < jobs:
                ready = next((s for s in waiting if needs[s[0].stem] <= finished), None)
                if ready is None:
                    break
                waiting.remove(ready)
                nb, out, params = ready
                shown_params = ", ".join(f"{k}={v!r}" for k, v in params.items())
                print(f"[{index[nb.stem]}/{len(steps)}] {nb.stem} started ({shown_params}; {backend}, "
                      f"{len(running) + 1} running) ...", flush=True)
                running[pool.submit(_execute, nb, out, params, timeout_per_cell)] = ready
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                nb, out, _ = running.pop(future)
                try:
                    outcome, seconds, detail = future.result()
                except Exception as exc:  # noqa: BLE001 - its process died (out of memory, killed)
                    outcome, seconds, detail = "failed", 0.0, f"{type(exc).__name__}: {exc} (its process stopped)"
                if _report(f"[{index[nb.stem]}/{len(steps)}]", nb, out, outcome, seconds, detail):
                    finished.add(nb.stem)
                else:
                    ok = False
    if ok and waiting:  # cannot happen with steps in_reading_order; said rather than hidden
        raise StudyError("notebooks never became ready: " + ", ".join(s[0].stem for s in waiting))
    return ok


def run(profile: str = DEFAULT_PROFILE, run_dir: str | os.PathLike | None = None,
        overrides: dict[str, object] | None = None, only: list[str] | None = None,
        timeout_per_cell: int | None = None, notebook_dir: str | os.PathLike | None = None,
        skip_finished: bool = False, jobs: int = 1, data: str | os.PathLike | None = None) -> Path:
    """Execute the notebooks (in order, or ``jobs`` at a time); returns the run directory.

    ``data``: the FER-2013 copy to read (folders, zip or ``fer2013.csv``), given to every notebook as
    its ``data_dir`` parameter; None: the notebooks' default (``FER2013_DIR``, else ``data/fer2013``).

    With ``skip_finished``, a notebook that already finished in this run directory, unchanged and
    with the same parameters (:func:`finished_already`), is not run again: a long run interrupted
    between notebooks continues where it stopped and keeps the finished notebooks' outputs and times
    (a training interrupted within a notebook resumes from its last finished epoch). It does not look
    at the data or at ``fer_utils``' code: after changing either, run without it.

    With ``jobs`` > 1 (for a GPU machine, or a CPU with cores to spare), up to that many notebooks run
    at once, each in its own kernel, and each starts once the notebooks it reads (:data:`READS`) have
    finished. The outcome is the same as in order; only the wall time changes.

    Raises StudyError on bad input, and SystemExit(1) after printing the failing
    notebook's path when a notebook fails.
    """
    if jobs < 1:
        raise StudyError(f"--jobs must be at least 1, got {jobs}")
    run_path = resolve(run_dir or f"runs/{profile}")
    if os.environ.get("KERAS_BACKEND") == "jax":
        # every notebook's kernel compiles the same model again: XLA keeps its compilations on disk
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(repo_root() / ".cache" / "jax"))
    if data is not None:
        data = Path(data).expanduser().resolve()  # the kernels run in notebooks/: relative to where we were called
        if not data.exists():
            raise StudyError(f"--data {data}: no such file or folder (give FER-2013's image folders, its zip "
                             "or fer2013.csv)")
    elif os.environ.get(DATA_ENV) and not Path(os.environ[DATA_ENV]).is_absolute():
        os.environ[DATA_ENV] = str(Path(os.environ[DATA_ENV]).resolve())
    steps = plan(profile, run_path, overrides or {}, only, notebook_dir, data)
    (run_path / "notebooks").mkdir(parents=True, exist_ok=True)
    at_once = f", up to {jobs} at once" if jobs > 1 else ""
    print(f"profile {profile}: {len(steps)} notebook(s) into {shown(run_path)}{at_once}", flush=True)
    skip = set()
    for i, (nb, out, params) in enumerate(steps, start=1):
        if skip_finished and finished_already(nb, out, params):
            print(f"[{i}/{len(steps)}] {nb.stem}: finished in {shown(out)} with these parameters and cells, "
                  "not run again", flush=True)
            skip.add(i)
    started = time.perf_counter()
    from .progress import EpochWatcher, epoch_caps

    with EpochWatcher(run_path, epoch_caps(steps)):  # a line per epoch: a training cell runs for hours
        if jobs > 1:
            ok = _run_parallel(steps, jobs, timeout_per_cell, {steps[i - 1][0].stem for i in skip})
        else:
            ok = True
            for i, (nb, out, params) in enumerate(steps, start=1):
                if i in skip:
                    continue
                shown_params = ", ".join(f"{k}={v!r}" for k, v in params.items())
                print(f"[{i}/{len(steps)}] {nb.stem} ({shown_params}) ...", flush=True)
                if not _report(f"[{i}/{len(steps)}]", nb, out, *_execute(nb, out, params, timeout_per_cell)):
                    ok = False
                    break
    if not ok:
        raise SystemExit(1)
    print(f"profile {profile}: {len(steps) - len(skip)} notebook(s) run in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return run_path


def default_run_dir(profile: str, backend: str = "tensorflow") -> str:
    """Where a run goes without ``--run-dir``: ``runs/<profile>``, or ``runs/<profile>-<backend>`` on a
    Keras backend other than TensorFlow (so that runs on two backends never mix)."""
    return f"runs/{profile}" if backend == "tensorflow" else f"runs/{profile}-{backend}"


def use_backend(name: str | None) -> str:
    """Choose the Keras backend of the notebooks' kernels (they inherit ``KERAS_BACKEND``).

    ``name``: ``tensorflow``, ``jax``, ``torch``, or None for ``KERAS_BACKEND`` (else tensorflow).
    Raises :class:`StudyError` for an unknown backend or one whose package is not installed.
    """
    import importlib.util

    name = name or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if name not in BACKENDS:
        raise StudyError(f"unknown Keras backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if importlib.util.find_spec(name) is None:
        extra = "" if name == "tensorflow" else f": pip install -e '.[{name}]'"
        raise StudyError(f"the Keras backend {name!r} is not installed{extra}")
    os.environ["KERAS_BACKEND"] = name
    return name


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``fer-study``, or ``python -m fer_study.runner``)."""
    profiles = load_profiles()
    parser = argparse.ArgumentParser(
        prog="fer-study", description="Run the FER-2013 study notebooks with papermill.",
        epilog="profiles: " + "; ".join(f"{k}: {v.get('description', '')}" for k, v in profiles.items()),
    )
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help=f"default: {DEFAULT_PROFILE}")
    parser.add_argument("--run-dir", help="default: runs/<profile>, or runs/<profile>-<backend> on a backend "
                                          "other than TensorFlow (relative paths: to the repository)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend of every notebook's kernel (default: KERAS_BACKEND, else "
                             "tensorflow); jax and torch are optional extras: pip install -e '.[jax]'")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (repeatable); must exist in the notebooks")
    parser.add_argument("--only", help="comma-separated notebook number prefixes, e.g. 00,01")
    parser.add_argument("--data", metavar="PATH",
                        help="the FER-2013 copy to read: its image folders, its zip or fer2013.csv (default: "
                             "the FER2013_DIR environment variable, else data/fer2013 in the repository)")
    parser.add_argument("--cache", metavar="DIR",
                        help="where decoded copies of the data are cached (default: FER2013_CACHE, else ~/.cache/fer2013-study)")
    parser.add_argument("--verify", choices=MODES, default=None,
                        help="how each load checks the copy against the genuine FER-2013 (default: "
                             "FER2013_VERIFY, else report the difference and go on)")
    parser.add_argument("--skip-finished", action="store_true",
                        help="do not run again a notebook that finished in the run directory, unchanged "
                             "and with the same parameters (to continue an interrupted run; the data and "
                             "fer_utils are not compared)")
    parser.add_argument("--strict-data", action="store_true",
                        help="the same as --verify strict: refuse a data set that is not canonical FER-2013")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks run at once, each in its own kernel, each once the notebooks whose "
                             "results it reads have finished (default 1: in order); for a GPU machine")
    parser.add_argument("--list", action="store_true", help="list profiles and notebooks, then exit")
    parser.add_argument("--status", action="store_true",
                        help="say where the run directory stands (each notebook, each training's latest epoch "
                             "and the time it may still take), then exit; runs nothing, so it can be asked "
                             "from another shell while the run goes on")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for name, spec in profiles.items():
                print(f"{name}: {spec.get('description', '')}")
            for nb in notebooks():
                print(f"{nb.name}: parameters {', '.join(parameter_names(nb))}")
            return 0
        overrides = dict(parse_override(p) for p in args.param)
        only = [o.strip() for o in args.only.split(",")] if args.only else None
        if args.status:
            from .progress import run_status

            backend = args.backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
            run_dir = resolve(args.run_dir or default_run_dir(args.profile, backend))
            print(f"{shown(run_dir)} (profile {args.profile}):")
            print(run_status(run_dir, plan(args.profile, run_dir, overrides, only, data=args.data)))
            return 0
        # the kernels inherit the environment, which load_fer2013 reads for what its arguments leave open
        if args.strict_data or args.verify:
            os.environ[VERIFY_ENV] = "strict" if args.strict_data else args.verify
        if args.cache:
            from fer_utils.data import CACHE_ENV

            os.environ[CACHE_ENV] = str(Path(args.cache).expanduser().resolve())
        backend = use_backend(args.backend)
        run_dir = args.run_dir or default_run_dir(args.profile, backend)
        run(args.profile, run_dir, overrides, only, args.timeout, skip_finished=args.skip_finished,
            jobs=args.jobs, data=args.data)
    except StudyError as exc:
        print(f"fer-study: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
