"""Copy a finished run into the repository, so that a reader sees its notebooks, figures and numbers.

    fer-publish runs/reference            # check, then copy
    fer-publish runs/reference --check    # only say what is missing

A run directory (written by ``fer-study``) is published only when it is complete: every
numbered notebook executed without an error under one profile, every experiment of
:data:`fer_utils.experiments.EXPERIMENTS` has its metrics, predictions and history, and
notebook 06 exported the shipped models. Then, each file written whole or not at all:

    run/notebooks/NN_*.ipynb         -> notebooks/            (the executed notebooks, with outputs; a
                                                               "No committed outputs yet" note becomes a
                                                               line naming where the outputs come from, and
                                                               the committed notebook's nbval tags are kept)
    run/figures/*.png                -> figures/              (numbered figures of older runs removed)
    run/metrics/<name>.json          -> results/<profile>/metrics/
    run/predictions/<name>.npz       -> results/<profile>/predictions/
    run/<training>/history.csv       -> results/<profile>/<training>_history.csv  (every training's:
                                                               the experiments', notebook 08's steps' and
                                                               the exercises'; older runs' removed)
    run/metrics/peers/*.json         -> results/<profile>/metrics/peers/  (the fer package's scores, if any)
    run/predictions/peers/*.npz      -> results/<profile>/predictions/peers/  (and its answers)
    run/shipped/*.keras              -> models/               (with a generated models/README.md;
                                                               a re-export of the same weights is not copied,
                                                               models the run does not ship are removed)
    the teacher notebooks, stubbed   -> student/              (the student copies, generated again:
                                                               :mod:`fer_study.classroom`)
    a manifest                       -> results/published.json
    the results, computed            -> README.md, between README_BEGIN and README_END

The manifest says which run the repository's results come from (profile, each notebook's
parameters and papermill wall time, each experiment's accuracy and training time, each
shipped model's sha256); the tests read it to check the shipped models against their metrics.
A notebook's ``executed_in_s`` is the wall time of the execution that was kept; a notebook executed
over finished trainings takes less than its training did, which is why each notebook's
``train_seconds`` (the sum of the epoch times of every model it trains:
:func:`fer_utils.experiments.training_time`) is there too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from fer_utils.compare import (describe_against_peer, describe_against_report, described_cpu, duration,
                               describe_training_time, markdown_summary, stopping_verdicts, summary_table)
from fer_utils.data import repo_root
from fer_utils.evaluate import read_metrics
from fer_utils.experiments import (EXPERIMENTS, PEER_METRICS, PEER_PREDICTIONS, history_file, read_peer, training_time)
from fer_utils.history import read_history
from .classroom import STUDENT_DIR, ExerciseError, student_copies, write_student_copies
from fer_utils.notebook import resolve, shown

from .notebooks import (notebooks, own_cells, papermill_record, published_cells, published_form,
                        without_injected)

MANIFEST = Path("results") / "published.json"
#: The README's results lie between these lines; fer-publish writes them (:func:`write_readme_results`).
README_BEGIN = "<!-- results: written by fer-publish from results/published.json and its metrics; do not edit -->"
README_END = "<!-- end of the results written by fer-publish -->"


class PublishError(RuntimeError):
    """The run cannot be published; the message lists every reason, one per line."""


def _notebook_run_info(path: Path) -> dict:
    """Papermill's record of one executed notebook: parameters, duration, end time, exception."""
    meta = papermill_record(json.loads(path.read_text()))
    return {"parameters": meta.get("parameters", {}), "duration_s": meta.get("duration"),
            "end_time": meta.get("end_time"), "exception": meta.get("exception")}


def _has_outputs(notebook: Path) -> bool:
    """Whether a notebook file holds any code cell output."""
    cells = json.loads(notebook.read_text()).get("cells", [])
    return any(cell.get("outputs") for cell in cells if cell.get("cell_type") == "code")


def check_run(run: Path, notebook_dir: Path | None = None,
              experiments: list[str] | None = None) -> tuple[str, list[str]]:
    """The run's profile, and every reason it cannot be published (empty when it can).

    Raises PublishError when ``run`` is not a directory at all."""
    run = Path(run)
    if not run.is_dir():
        raise PublishError(f"{shown(run)}: no such run directory")
    experiments = list(EXPERIMENTS) if experiments is None else experiments
    problems: list[str] = []
    profiles: set[str] = set()
    for nb in notebooks(notebook_dir):
        executed = run / "notebooks" / nb.name
        if not executed.exists():
            problems.append(f"notebooks/{nb.name}: not executed in this run")
            continue
        try:
            info = _notebook_run_info(executed)
        except (json.JSONDecodeError, UnicodeDecodeError):
            problems.append(f"notebooks/{nb.name}: not a readable notebook (half-written?)")
            continue
        if info["exception"]:
            problems.append(f"notebooks/{nb.name}: stopped with an error")
        elif not info["end_time"]:
            problems.append(f"notebooks/{nb.name}: not finished (still running or interrupted)")
        elif _published_form(executed) != _published_form(nb):
            problems.append(f"notebooks/{nb.name}: the run executed another version of it (its cells differ from "
                            "the committed notebook's, which publishing would overwrite): run it again in this run "
                            f"directory (fer-study --only {nb.stem[:2]} --skip-finished re-runs only what changed)")
        if "profile" in info["parameters"]:
            profiles.add(str(info["parameters"]["profile"]))
    if len(profiles) > 1:
        problems.append(f"the notebooks ran under different profiles: {', '.join(sorted(profiles))}")
    for name in experiments:
        for part in (f"metrics/{name}.json", f"predictions/{name}.npz", f"{name}/history.csv"):
            if not (run / part).exists():
                problems.append(f"{part}: missing")
        metrics = run / "metrics" / f"{name}.json"
        if metrics.exists() and len(profiles) == 1:
            made_by = read_metrics(metrics)["provenance"].get("profile")
            if made_by not in profiles:
                problems.append(f"metrics/{name}.json: written under profile {made_by!r}, "
                                f"not this run's {next(iter(profiles))!r}")
    shipped = sorted((run / "shipped").glob("*.keras"))
    if not shipped:
        problems.append("shipped/*.keras: no exported model (notebook 06 writes them)")
    for model in shipped:
        if model.stem not in experiments:
            problems.append(f"shipped/{model.name}: not a model of the experiments published")
    if not sorted((run / "figures").glob("*.png")):
        problems.append("figures/*.png: no figures")
    try:  # publishing writes them again; the run's notebooks have the committed ones' cells (checked above)
        student_copies(notebook_dir)
    except ExerciseError as exc:
        problems.append(f"the student copies cannot be made: {exc}")
    profile = profiles.pop() if len(profiles) == 1 else ""
    return profile, problems


def _copy(src: Path, dest: Path) -> None:
    """Copy one file whole or not at all."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _published_form(path: Path) -> list[tuple[str, str]]:
    """:func:`published_form` of the notebook at ``path``."""
    return published_form(json.loads(path.read_text()))


def nbval_tags_kept(notebook: dict, committed: dict) -> bool:
    """Give, in place, each cell of the executed ``notebook`` the nbval tags (``nbval-*``, such as
    ``nbval-check-output``) of its cell in the ``committed`` notebook it replaces; return whether any
    changed. The cells pair up in order, papermill's injected parameters left out of both (the check
    before publishing makes their sources agree). A tag marks a cell for CI's check of the committed
    outputs without changing its source, so a run that executed the notebook before the tag was added
    is still the same notebook; without this, publishing it would drop the mark."""
    changed = False
    for cell, old in zip(own_cells(notebook), own_cells(committed)):
        if cell.get("cell_type") != old.get("cell_type"):
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        wanted = [t for t in tags if not t.startswith("nbval-")] + \
                 [t for t in old.get("metadata", {}).get("tags", []) if t.startswith("nbval-")]
        if sorted(wanted) != sorted(tags):
            cell.setdefault("metadata", {})["tags"] = wanted
            changed = True
    return changed


def _copy_notebook(src: Path, dest: Path) -> None:
    """Copy an executed notebook whole or not at all, without papermill's injected-parameters cell
    (:func:`without_injected`: Run All then uses the notebook's own defaults; the run's parameters stay
    in its papermill record and its first output line), with :func:`published_cells` applied and the
    committed copy's nbval tags kept (:func:`nbval_tags_kept`)."""
    notebook = json.loads(src.read_text())
    try:
        committed = json.loads(dest.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        committed = {}
    if nbval_tags_kept(notebook, committed) | published_cells(notebook) | without_injected(notebook):
        _write_text(dest, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    else:
        _copy(src, dest)


def _write_text(dest: Path, text: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, dest)


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def same_model(a: Path, b: Path) -> bool:
    """Whether two ``.keras`` files hold the same architecture and weights: their ``config.json``
    and ``model.weights.h5`` are byte-identical (``metadata.json`` records only when it was saved)."""
    import zipfile

    try:
        with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
            return all(za.read(part) == zb.read(part) for part in ("config.json", "model.weights.h5"))
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def _experiment_entry(metrics_path: Path) -> dict:
    payload = read_metrics(metrics_path)
    m, p = payload["metrics"], payload["provenance"]
    return {"accuracy": m["accuracy"], "accuracy_ci95": m["accuracy_ci95"], "macro_f1": m["macro_f1"],
            "balanced_accuracy": m["balanced_accuracy"], "epochs": p["epochs"],
            "best_epoch": p.get("best_epoch"), "train_seconds": p.get("train_seconds"),
            "wall_seconds": p.get("wall_seconds"), "precision": p.get("precision", "float32"),
            "finished_utc": p.get("finished_utc"), "test_time_augmentation": p.get("test_time_augmentation"),
            "trained_on": described_cpu(p.get("hardware") or {})}


def models_readme(manifest: dict) -> str:
    """``models/README.md`` for the shipped models of ``manifest`` (generated, not hand-kept)."""
    profile = manifest["profile"]
    machine = described_cpu(manifest.get("hardware") or {}) or "an unrecorded machine"
    rows = []
    for name, model in manifest["models"].items():
        exp = manifest["experiments"][name]
        lo, hi = exp["accuracy_ci95"]
        rows.append(f"| `{name}.keras` | {EXPERIMENTS.get(name, name)}, epoch {exp['best_epoch']} of "
                    f"{exp['epochs']} kept on PublicTest, trained in {exp['precision']} on "
                    f"{exp.get('trained_on') or machine} | "
                    f"{exp['accuracy']:.3f} ({lo:.3f}–{hi:.3f}) | {model['mib']:.1f} MiB | "
                    f"`{model['sha256'][:16]}` |")
    best = max(manifest["experiments"], key=lambda n: manifest["experiments"][n]["accuracy"])
    shipped = list(manifest["models"])
    if shipped == ["baseline"] == [best]:
        why = "The baseline is also the run's most accurate model, so it is the only file."
    elif best in shipped:
        why = f"They are the baseline and the run's most accurate model ({best})."
    else:
        why = f"The run's most accurate model ({best}) is not among them."
    with_tta = [name for name in shipped if manifest["experiments"][name].get("test_time_augmentation")]
    if with_tta:
        files = ", ".join(f"`{name}.keras`" for name in with_tta)
        why += (f"\n\nThe accuracy of {files} was measured with test-time augmentation "
                f"({manifest['experiments'][with_tta[0]]['test_time_augmentation']}): predict the same way with "
                "`fer_utils.beyond.tta_probabilities(model, faces_uint8)` or `fer-predict --model ... --tta`; "
                "a plain `model.predict` sees only the centre crop and scores a little lower.")
    return "\n".join([
        "# Shipped models",
        "",
        f"Exported by notebook 06 of the `{profile}` run (`{manifest['run_dir']}`, finished "
        f"{manifest['run_finished_utc']}) and copied here by `fer-publish`; "
        f"their metrics are in `results/{profile}/metrics/`. This file is generated: edit "
        "`fer_study/publish.py`, not this file.",
        "",
        "| file | experiment | PrivateTest accuracy (95 % CI) | size | sha256 begins |",
        "|---|---|---|---|---|",
        *rows,
        "",
        why,
        "",
        "Each file holds the architecture and weights (batch-norm statistics included) in float32, "
        "without the optimizer's state, whatever precision the model trained in. The first layer "
        "scales the pixels, so a model takes raw uint8 faces of shape (N, 48, 48, 1) and "
        "returns 7 probabilities: angry, disgust, fear, happy, sad, surprise, neutral.",
        "",
        "Load one offline:",
        "",
        "```python",
        "import keras",
        "import fer_utils.model  # registers PerImageStandardization, a possible first layer",
        "",
        'model = keras.saving.load_model("models/baseline.keras")',
        "probabilities = model.predict(faces_uint8)",
        "```",
        "",
        "or from the shell: `.venv/bin/fer-predict photo.jpg` (`baseline.keras` is its default model).",
        "`tests/test_real_data.py` checks that each file matches its sha256 here and scores its recorded",
        "accuracy on PrivateTest: exactly for a model trained in float32, within half a point for one",
        "trained in mixed precision (its float32 export settles a few near-ties differently).",
        "",
    ])


def publish(run: str | os.PathLike, root: str | os.PathLike | None = None,
            notebook_dir: str | os.PathLike | None = None) -> dict:
    """Check ``run`` and copy it into the repository at ``root``; returns the manifest written.

    Raises PublishError (listing every problem) before anything is copied when the run is incomplete.
    """
    run = Path(run)
    root = Path(root) if root is not None else repo_root()
    notebook_dir = Path(notebook_dir) if notebook_dir is not None else root / "notebooks"
    profile, problems = check_run(run, notebook_dir)
    if problems:
        raise PublishError(f"{shown(run)} is not ready to publish:\n" + "\n".join(f"  {p}" for p in problems))

    listed = notebooks(notebook_dir)
    executed = {nb.name: _notebook_run_info(run / "notebooks" / nb.name) for nb in listed}
    for name in executed:
        _copy_notebook(run / "notebooks" / name, notebook_dir / name)
    # publishing rewrites a notebook's first note (the run it comes from), which the student copy carries
    write_student_copies(root / STUDENT_DIR, notebook_dir)

    figures = sorted((run / "figures").glob("*.png"))
    new_names = {f.name for f in figures}
    removed = [old.name for old in sorted((root / "figures").glob("[0-9][0-9]_*.png"))
               if old.name not in new_names]
    for fig in figures:
        _copy(fig, root / "figures" / fig.name)
    for name in removed:
        (root / "figures" / name).unlink()

    results = root / "results" / profile
    experiments = {}
    for name in EXPERIMENTS:
        _copy(run / "metrics" / f"{name}.json", results / "metrics" / f"{name}.json")
        _copy(run / "predictions" / f"{name}.npz", results / "predictions" / f"{name}.npz")
        experiments[name] = _experiment_entry(results / "metrics" / f"{name}.json")
    histories = {path.parent.name for path in run.glob("*/history.csv")}
    for old in sorted(results.glob("*_history.csv")):
        if old.name[: -len("_history.csv")] not in histories:
            old.unlink()  # a training of an older run that this run did not do
    for name in sorted(histories):  # every training's, the steps and exercises included: what the run cost
        _copy(run / name / "history.csv", results / f"{name}_history.csv")
    times = training_time(results)
    for folder, pattern in ((PEER_METRICS.parent, "*.json"), (PEER_PREDICTIONS.parent, "*.npz")):
        for old in sorted((results / folder).glob(pattern)):
            old.unlink()  # an older run's peer scores and answers, which this run may not have
        for peer in sorted((run / folder).glob(pattern)):
            _copy(peer, results / folder / peer.name)

    models = {}
    shipped = sorted((run / "shipped").glob("*.keras"))
    models_removed = [old.name for old in sorted((root / "models").glob("*.keras"))
                      if old.name not in {src.name for src in shipped}]
    for name in models_removed:  # a model of an older run that this run does not ship
        (root / "models" / name).unlink()
    for src in shipped:
        dest = root / "models" / src.name
        if not (dest.exists() and same_model(src, dest)):  # a re-export of the same model keeps the file
            _copy(src, dest)
        models[src.stem] = {"file": f"models/{src.name}", "sha256": sha256(dest),
                            "mib": round(dest.stat().st_size / 2**20, 1),
                            "metrics": f"results/{profile}/metrics/{src.stem}.json"}

    baseline = read_metrics(results / "metrics" / "baseline.json")["provenance"]
    manifest = {
        "profile": profile,
        "run_dir": shown(run),
        "run_finished_utc": max(e["end_time"] for e in executed.values())[:16].replace("T", " ") + " UTC",
        "published_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": {k: baseline.get("hardware", {}).get(k) for k in ("cpu", "cpu_count", "accelerators")},
        "versions": baseline.get("versions", {}),
        "notebooks": {name: {"parameters": info["parameters"],
                             "executed_in_s": round(info["duration_s"] or 0, 1),
                             "train_seconds": round(3600 * times.loc[times["notebook"] == name[:2], "hours"].sum(), 1),
                             "end_time": info["end_time"]} for name, info in executed.items()},
        "experiments": experiments,
        "models": models,
        "figures_removed": removed,
        "models_removed": models_removed,
    }
    _write_text(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    _write_text(root / "models" / "README.md", models_readme(manifest))
    write_readme_results(root, readme_results(results, manifest))
    return manifest


def readme_results(results: str | os.PathLike, manifest: dict) -> str:
    """The README's results for a published run, computed from its files: which run and
    how long it took (``manifest``: ``results/published.json``), :func:`markdown_summary`, the
    sentences of :func:`describe_against_report`, the baseline's curve against the report's
    (:func:`fer_utils.train.compare_with_report_curve`), how each training ended
    (:func:`stopping_verdicts`) and, where notebook 06 scored it, :func:`describe_against_peer`.
    ``fer-publish`` writes it into the README, and a test checks the README still holds it, so
    no number there can drift from its metrics file."""
    table = summary_table(results)
    notebooks = manifest.get("notebooks", {})
    train = duration(sum(n.get("train_seconds") or 0 for n in notebooks.values()))
    wall = duration(sum(n.get("executed_in_s") or 0 for n in notebooks.values()))
    lines = [f"The `{manifest['profile']}` run, finished {manifest['run_finished_utc']}: {train} of training (the "
             f"epochs' times, summed), and {wall} for the notebooks' own execution (over trainings already finished, "
             f"a notebook takes far less than its training did). Computed by `fer-publish` from "
             f"`results/{manifest['profile']}/`, where each metrics file records the machine and versions that "
             "produced it; the run's notebooks say more. The `report` column is the source report's figure.",
             "", markdown_summary(table), "", "What it cost:", ""]
    lines += [f"- {line}" for line in describe_training_time(training_time(results)).splitlines()]
    lines += ["", "Against the source report:", ""]
    lines += [f"- {line}" for line in describe_against_report(table, results).splitlines()]
    baseline = read_history(history_file(results, "baseline"))
    if baseline.get("val_accuracy"):
        from fer_utils.train import compare_with_report_curve

        lines += ["", "The baseline's PublicTest curve against the report's:", ""]
        lines += [f"- {line}" for line in compare_with_report_curve(baseline).splitlines()]
    stopping = stopping_verdicts(results, list(table.index))
    if stopping:
        lines += ["", "How each training ended (from its PublicTest curve):", ""]
        lines += [f"- {line}" for line in stopping]
    peer = read_peer(results)
    if peer is not None:
        lines += ["", "Against a peer readers will try:", ""]
        lines += [f"- {line}" for line in describe_against_peer(table, peer, results).splitlines()]
    return "\n".join(lines)


def readme_results_block(readme: str) -> str | None:
    """The text between :data:`README_BEGIN` and :data:`README_END` in ``readme`` (None without both)."""
    if README_BEGIN not in readme or README_END not in readme.split(README_BEGIN, 1)[1]:
        return None
    return readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip("\n")


def write_readme_results(root: Path, text: str) -> bool:
    """Put ``text`` between the README's result markers, whole or not at all; False (nothing
    written) where the README or its markers are missing."""
    path = Path(root) / "README.md"
    if not path.exists():
        return False
    readme = path.read_text()
    if readme_results_block(readme) is None:
        return False
    before, rest = readme.split(README_BEGIN, 1)
    after = rest.split(README_END, 1)[1]
    _write_text(path, f"{before}{README_BEGIN}\n{text}\n{README_END}{after}")
    return True


def read_manifest(root: str | os.PathLike | None = None) -> dict:
    """``results/published.json``: which run the repository's results come from."""
    path = (Path(root) if root is not None else repo_root()) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{MANIFEST.as_posix()} not found: publish a run first "
                                "(fer-publish runs/<profile>)")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``fer-publish`` or ``fer-publish``)."""
    parser = argparse.ArgumentParser(prog="fer-publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="the run directory, e.g. runs/reference (relative: to the repository)")
    parser.add_argument("--check", action="store_true", help="only list what keeps the run from being published")
    args = parser.parse_args(argv)
    run = resolve(args.run_dir)
    try:
        if args.check:
            profile, problems = check_run(run)
            for p in problems:
                print(p)
            print(f"{shown(run)} ({profile or 'profile unknown'}): "
                  + ("ready to publish" if not problems else f"{len(problems)} problem(s)"))
            return 0 if not problems else 1
        manifest = publish(run)
    except PublishError as exc:
        print(f"fer-publish: {exc}", file=sys.stderr)
        return 2
    print(f"published {manifest['run_dir']} (profile {manifest['profile']}): "
          f"{len(manifest['notebooks'])} notebooks, {len(manifest['experiments'])} experiments "
          f"into results/{manifest['profile']}/, models {', '.join(manifest['models'])}, "
          f"student copies into {STUDENT_DIR}/; "
          f"{len(manifest['figures_removed'])} figure(s) and {len(manifest['models_removed'])} model(s) "
          "of older runs removed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
