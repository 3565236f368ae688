"""Carry a long run from one working session to the next through the repository.

The reference run takes longer than one working session, and a session's machine may come back
with nothing but what was committed: the run directory (``runs/<profile>``, ignored by git) is
gone, and with it every finished training. This module packs what the run needs to go on into a
folder that is committed, and unpacks it into a run directory at the next session's start:

    python -m fer_utils.machinery.carry save runs/reference      # at a session's end (or any time)
    python -m fer_utils.machinery.carry restore runs/reference   # at the next start, then
    python -m fer_utils.machinery.study --skip-finished ...      # goes on where it stopped
    python -m fer_utils.machinery.carry show runs/reference      # what save would keep (writes nothing)
    python -m fer_utils.machinery.carry save runs/reference --finished-only   # mid-session, run going on

The carried folder is ``results/<run name>-in-progress/`` unless ``--carry`` says otherwise. It is not a
publication (``fer_utils.machinery.publish`` does that once the run is complete) and is removed once
the run is published. What goes in, smallest that lets the run go on exactly as it would have:

* every file of the run directory except models and trainings: the executed notebooks (only those
  that finished: the others run again anyway), figures, metrics, predictions, notes, and the log
  (``run.log`` travels as ``run_log.txt``: logs are ignored by git);
* every training folder (``<name>/``) of a notebook that has not finished: its history, its last
  epoch's state (``backup/``, weights and optimizer) and its best epoch's model, so that the notebook,
  run again, resumes the training at its next epoch or finds it finished (and writes its
  ``models/<name>.keras`` again, which is therefore left out). The best epoch's model goes without its
  optimizer's state (:func:`fer_utils.train.slim_checkpoint`: same precision and weights, the same
  predictions, a third of the bytes) unless that state can be read again, which is only when the
  training finished at its cap with its best epoch last (raising the cap goes on from it);
* of a finished notebook's trainings, the history, ``done.json`` and ``machines.json``; its models only where a later
  notebook reads them: the baseline (notebooks 05, 07 and 08 start from it) and the most accurate model
  so far (notebook 06 ships it), written as :func:`fer_utils.experiment.export_model` writes a shipped
  model (float32, no optimizer state: a third of the size, the same predictions). The rest are left
  out and listed in ``CARRY.json``: running such a notebook again (after its cells changed) trains them
  afresh.

A save can be made while the run goes on: a save during which a file it copies changed (a training
ending an epoch) is made again, so that it holds one whole epoch's state. ``--finished-only`` leaves out
the trainings of notebooks that have not finished: it costs the repository little (a model exported once
keeps its bytes), for a save after each finished notebook, so that a session cut short still leaves them.

Every file is written whole: the folder is built beside the old one and then put in its place.
``CARRY.json`` lists each file with its size and sha256, and ``restore`` checks them.

What a save costs the repository matters as much as what it keeps: a stop's commits may add up to
256 MiB of diffs at most, where a changed binary file counts its old and its new bytes, and a removed
one its old bytes. A training's state is 54 MB for the report's CNN (weights and Adam's two moments),
so keep one carried save per session (replace, rather than add to, a carry commit made earlier in the
same session), and check the sum with :func:`submission_bytes` before the session ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ..data import repo_root
from ..history import MACHINES_FILE
from .publish import sha256 as _sha256
from .study import StudyError, papermill_record, resolve, shown

MANIFEST = "CARRY.json"
#: what each re-writing action does to a model, as CARRY.json records it
SLIMMED = {"export": "float32, without the optimizer's state",
           "slim": "its own precision, without the optimizer's state"}
LOG, CARRIED_LOG = "run.log", "run_log.txt"


def default_carry(run: str | os.PathLike) -> Path:
    """Where a run directory is carried by default: ``results/<its name>-in-progress``."""
    return repo_root() / "results" / f"{Path(run).name}-in-progress"


def finished_notebooks(run: Path) -> set[str]:
    """Numbers (``"01"``) of the notebooks in ``run/notebooks`` that ran to their end without an error."""
    done = set()
    for path in sorted((run / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        try:
            meta = papermill_record(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if meta.get("end_time") and not meta.get("exception"):
            done.add(path.name[:2])
    return done


def trainings(run: Path) -> list[str]:
    """The run's training folders: those that hold a ``history.csv``."""
    return sorted(p.parent.name for p in run.glob("*/history.csv"))


def models_read_later(run: Path) -> list[str]:
    """Experiments whose ``models/<name>.keras`` a later notebook reads: the baseline and the most
    accurate of those with metrics (:func:`fer_utils.experiment.models_to_ship`)."""
    from ..experiment import models_to_ship, summary_table

    try:
        table = summary_table(run)
    except (OSError, ValueError, KeyError):
        table = None
    names = {"baseline"}
    if table is not None and not table.empty:
        names.update(models_to_ship(table))
    return sorted(names)


def plan(run: str | os.PathLike, finished_only: bool = False) -> dict[str, str]:
    """What :func:`save` does with each file of ``run`` (paths relative to it, with ``/``):
    ``"copy"``, ``"export"`` (a model re-written in float32 without its optimizer state, as shipped),
    ``"slim"`` (a training's best model without its optimizer state, in its own precision) or
    ``"leave: why"``.
    With ``finished_only``, the trainings of notebooks that have not finished are left out too (a
    save that costs the repository little, in case the session ends before the full one)."""
    from ..experiment import training_notebook

    run = Path(run)
    if not run.is_dir():
        raise StudyError(f"{shown(run)}: no such run directory")
    done = finished_notebooks(run)
    folders = trainings(run)
    later = set(models_read_later(run))
    actions: dict[str, str] = {}
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        rel = path.relative_to(run)
        key = rel.as_posix()
        top = rel.parts[0]
        if top in folders:
            finished = training_notebook(top) in done
            if finished_only and not finished:
                actions[key] = (f"leave: notebook {training_notebook(top)} has not finished "
                                "(a save of finished notebooks only)")
            elif not finished and rel.name == "best.keras" and not _optimizer_read_again(run / top):
                actions[key] = "slim"
            elif not finished or rel.name in ("history.csv", "done.json", MACHINES_FILE):
                actions[key] = "copy"
            else:
                actions[key] = f"leave: notebook {training_notebook(top)} finished; its checkpoints are not read again"
        elif top == "models" and path.suffix == ".keras":
            name = path.stem
            if training_notebook(name) not in done:
                actions[key] = (f"leave: notebook {training_notebook(name)} has not finished; running it again "
                                "writes this model again from its training folder")
            elif name in later:
                actions[key] = "export"
            else:
                actions[key] = ("leave: notebook " + training_notebook(name) + " finished and no later "
                                "notebook reads this model")
        elif top == "notebooks" and path.suffix == ".ipynb" and path.name[:2] not in done:
            actions[key] = "leave: this notebook has not finished; it runs again"
        elif path.name.startswith(".") or "__pycache__" in rel.parts:
            actions[key] = "leave: a temporary file"
        else:
            actions[key] = "copy"
    return actions


def _optimizer_read_again(folder: Path) -> bool:
    """Whether the optimizer's state in a training's ``best.keras`` can be read again: only when the
    training finished at its epoch cap with its best epoch last, so that raising the cap goes on from
    that checkpoint (:func:`fer_utils.train.train_model`). A running training goes on from its
    ``backup/`` instead, and any other finished one starts afresh if given more epochs."""
    try:
        done = json.loads((folder / "done.json").read_text())
        epochs_run = int(done["epochs_run"])
        return epochs_run == int(done["best_epoch"]) == int(done["settings"]["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_root(), capture_output=True,
                              text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _stored_name(rel: str) -> str:
    return CARRIED_LOG if rel == LOG else rel


def _run_name(rel: str) -> str:
    return LOG if rel == CARRIED_LOG else rel


def _stamps(run: Path, actions: dict[str, str]) -> dict[str, tuple[int, int, int]]:
    """Size, modification time and inode of every file a save copies or exports (the log aside: it
    only grows, and a line cut short there costs nothing)."""
    stamps = {}
    for rel, action in actions.items():
        if action.startswith("leave") or rel == LOG:
            continue
        try:
            st = (run / rel).stat()
        except FileNotFoundError:
            st = None
        stamps[rel] = (st.st_size, st.st_mtime_ns, st.st_ino) if st else (-1, -1, -1)
    return stamps


def save(run: str | os.PathLike, carry: str | os.PathLike | None = None, note: str = "",
         finished_only: bool = False, attempts: int = 5, wait: float = 20.0) -> dict:
    """Pack ``run`` into ``carry`` (default :func:`default_carry`) as the module says, replacing what
    was there; returns the manifest (also written as ``carry/CARRY.json``). ``finished_only``: see
    :func:`plan`.

    The run may go on while it is saved: when a file changed, appeared or went while the folder was
    being built (a training finishing an epoch writes its backup, best model and history within a
    few seconds), the copy is thrown away and made again after ``wait`` seconds, up to ``attempts``
    times (StudyError after that, the old carried folder untouched). So the saved training state is
    always one whole epoch's.

    A model exported by an earlier save from the same file (same sha256) is kept as it was, not
    exported again: its bytes, and so git's copy of it, stay the same from save to save.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1 (got {attempts})")
    run = Path(run)
    carry = Path(carry) if carry else default_carry(run)
    building = carry.with_name(f".{carry.name}.building")
    for attempt in range(attempts):
        actions = plan(run, finished_only)
        stamps = _stamps(run, actions)
        try:
            manifest = _build(run, carry, building, actions, note, finished_only)
        except FileNotFoundError:  # a file went while it was copied: the run moved on
            manifest = None
        if manifest is not None and plan(run, finished_only) == actions and _stamps(run, actions) == stamps:
            break
        shutil.rmtree(building, ignore_errors=True)
        if attempt + 1 < attempts:
            time.sleep(wait)
    else:
        raise StudyError(f"{shown(run)} kept changing while it was copied ({attempts} tries, {wait:g} s apart): "
                         "stop the run, or save again")
    old = carry.with_name(f".{carry.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if carry.exists():
        os.replace(carry, old)
    os.replace(building, carry)
    shutil.rmtree(old, ignore_errors=True)
    return manifest


def _build(run: Path, carry: Path, building: Path, actions: dict[str, str], note: str,
           finished_only: bool) -> dict:
    """Write the carried folder for ``actions`` into ``building`` (emptied first); returns its manifest.
    Removes ``building`` on any error (a file of the run gone missing included: the caller retries)."""
    from ..experiment import export_model
    from ..train import slim_checkpoint

    try:
        before = json.loads((carry / MANIFEST).read_text())["files"]
    except (OSError, json.JSONDecodeError, KeyError):
        before = {}
    shutil.rmtree(building, ignore_errors=True)
    files, left = {}, {}
    try:
        for rel, action in actions.items():
            source = run / rel
            if action.startswith("leave"):
                try:
                    size = source.stat().st_size
                except FileNotFoundError:  # a file left out may come and go as it likes
                    size = 0
                left[rel] = {"bytes": size, "why": action.split(": ", 1)[1]}
                continue
            target = building / _stored_name(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            extra = {}
            if action in ("export", "slim"):
                origin = _sha256(source)
                old = before.get(_stored_name(rel), {})
                if (old.get("exported") == SLIMMED[action] and origin in (old.get("from_sha256"), old.get("sha256"))
                        and (carry / _stored_name(rel)).is_file()):
                    shutil.copy2(carry / _stored_name(rel), target)  # written before from the same file
                elif action == "export":
                    export_model(run, Path(rel).stem, target)
                else:
                    slim_checkpoint(source, target)
                extra = {"exported": SLIMMED[action],
                         "from_sha256": old.get("from_sha256", origin) if origin == old.get("sha256") else origin}
            else:
                shutil.copy2(source, target)
            files[_stored_name(rel)] = {"bytes": target.stat().st_size, "sha256": _sha256(target), **extra}
        manifest = {
            "run": run.name,
            "saved_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _commit(),
            "finished_notebooks": sorted(finished_notebooks(run)),
            "finished_only": finished_only,
            "note": note,
            "files": files,
            "left_out": left,
            "bytes": sum(f["bytes"] for f in files.values()),
        }
        (building / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        (building / "README.md").write_text(_readme(manifest))
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return manifest


def _readme(manifest: dict) -> str:
    done = ", ".join(manifest["finished_notebooks"]) or "none"
    where = f"results/{manifest['run']}-in-progress"
    return (
        f"# The `{manifest['run']}` run, in progress (carried between working sessions)\n\n"
        "Not a result. This folder holds what the run needs to go on after its machine is gone: the finished\n"
        "notebooks' outputs, every training's history, and the state of the training that was running\n"
        "(its last epoch's weights and optimizer), so that the next session resumes it at its next epoch.\n"
        "It is written by `python -m fer_utils.machinery.carry save`, and removed once the run is published\n"
        "(`python -m fer_utils.machinery.publish`). Generated: edit `fer_utils/machinery/carry.py`, not this file.\n\n"
        f"Saved {manifest['saved_utc']} at commit {manifest['commit'] or 'unknown'}; notebooks finished: {done};\n"
        f"{len(manifest['files'])} files, {manifest['bytes'] / 2**20:.1f} MiB "
        f"({len(manifest['left_out'])} left out, listed in `CARRY.json`).\n\n"
        "To go on:\n\n"
        "```\n"
        f"python -m fer_utils.machinery.carry restore runs/{manifest['run']} --carry {where}\n"
        f"python -m fer_utils.machinery.study --profile {manifest['run']} --skip-finished --defer 08\n"
        "```\n"
    )


def restore(run: str | os.PathLike, carry: str | os.PathLike | None = None, force: bool = False) -> dict:
    """Unpack ``carry`` into the run directory ``run``; returns the carried manifest.

    Refuses (StudyError) when ``run`` already holds files, unless ``force`` (then carried files replace
    theirs), and when a carried file's sha256 differs from the manifest's. Files land whole.
    """
    run = Path(run)
    carry = Path(carry) if carry else default_carry(run)
    try:
        manifest = json.loads((carry / MANIFEST).read_text())
    except FileNotFoundError:
        raise StudyError(f"{shown(carry)}: no {MANIFEST}; nothing was carried (save one with "
                         "python -m fer_utils.machinery.carry save RUN_DIR)") from None
    except json.JSONDecodeError as exc:
        raise StudyError(f"{shown(carry / MANIFEST)}: not valid JSON ({exc.msg})") from None
    if run.exists() and any(p.is_file() for p in run.rglob("*")) and not force:
        raise StudyError(f"{shown(run)} already holds files: restoring would mix two runs "
                         "(move it away, or pass --force to let the carried files replace those)")
    for stored, info in manifest["files"].items():
        source = carry / stored
        if not source.is_file():
            raise StudyError(f"{shown(source)}: listed in {MANIFEST} but missing")
        if _sha256(source) != info["sha256"]:
            raise StudyError(f"{shown(source)}: its sha256 differs from {MANIFEST}'s (changed since it was saved)")
    for stored in manifest["files"]:
        target = run / _run_name(stored)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.restoring")
        shutil.copy2(carry / stored, tmp)
        os.replace(tmp, target)
    return manifest


def unrestored(run: str | os.PathLike) -> str | None:
    """A one-line warning when the run's carried folder (:func:`default_carry`) holds finished notebooks
    that ``run`` does not: going on in ``run`` would redo them. None otherwise."""
    run = Path(run)
    held = default_carry(run) / MANIFEST
    try:
        manifest = json.loads(held.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    missing = sorted(set(manifest.get("finished_notebooks", [])) - finished_notebooks(run))
    if not missing:
        return None
    return (f"{shown(held.parent)} holds this run as saved {manifest.get('saved_utc', '?')}, with notebook(s) "
            f"{', '.join(missing)} finished that {shown(run)} lacks: restore it first (fer-carry restore "
            f"{shown(run)}), or move that folder away to start afresh")


def describe(manifest: dict) -> str:
    """A few lines on a carried manifest: when, which notebooks, how much, what was left out."""
    mib = manifest["bytes"] / 2**20
    lines = [f"{manifest['run']}: saved {manifest['saved_utc']} at {manifest['commit'] or 'an unknown commit'}; "
             f"notebooks finished: {', '.join(manifest['finished_notebooks']) or 'none'}; "
             f"{len(manifest['files'])} files, {mib:.1f} MiB"]
    if manifest["left_out"]:
        lines.append(f"left out ({len(manifest['left_out'])} files, "
                     f"{sum(v['bytes'] for v in manifest['left_out'].values()) / 2**20:.1f} MiB):")
        whys: dict[str, list[str]] = {}
        for rel, info in manifest["left_out"].items():
            whys.setdefault(info["why"], []).append(rel)
        for why, rels in whys.items():
            lines.append(f"  {', '.join(rels[:4])}{f' and {len(rels) - 4} more' if len(rels) > 4 else ''}: {why}")
    return "\n".join(lines)


#: the most a stop's commits may add up to in diffs (binary files counted as git writes them)
SUBMISSION_LIMIT = 256 * 2**20


def submission_bytes(since: str, cwd: str | os.PathLike | None = None) -> int:
    """Bytes of the diffs of every commit after ``since`` up to HEAD, plus the uncommitted changes to
    tracked files, each as ``git diff --binary`` writes it (a changed binary file holds its new and its
    old bytes, a removed one its old bytes): what a stop of these commits adds up to, to hold against
    :data:`SUBMISSION_LIMIT`. StudyError if ``since`` is not a commit of this repository."""
    cwd = cwd or repo_root()
    try:
        subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{since}^{{commit}}"], cwd=cwd,
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        raise StudyError(f"{since}: not a commit of this repository") from None
    total = 0
    for command in (["git", "log", "--format=", "-p", "--binary", "--no-renames", f"{since}..HEAD"],
                    ["git", "diff", "--binary", "--no-renames", "HEAD"]):
        with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE) as proc:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(1 << 20):
                total += len(chunk)
        if proc.returncode:
            raise StudyError(f"{' '.join(command[:2])} failed (exit status {proc.returncode})")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_utils.machinery.carry",
                                     description="Carry a long run between working sessions (see the module's docstring).")
    parser.add_argument("command", choices=("save", "restore", "show", "cost"),
                        help="cost: what the commits since --since add up to in diffs, against a stop's limit")
    parser.add_argument("run_dir", nargs="?", help="the run directory, e.g. runs/reference (not for cost)")
    parser.add_argument("--carry", help="the carried folder (default: results/<run name>-in-progress)")
    parser.add_argument("--note", default="", help="save: a line kept in the manifest")
    parser.add_argument("--force", action="store_true", help="restore into a run directory that holds files")
    parser.add_argument("--finished-only", action="store_true",
                        help="save (and show): leave out the trainings of notebooks that have not finished")
    parser.add_argument("--since", help="cost: the commit the session started from")
    args = parser.parse_args(argv)
    if args.command == "cost":
        if not args.since:
            parser.error("cost needs --since COMMIT (the commit the session started from)")
        try:
            total = submission_bytes(args.since)
        except StudyError as exc:
            print(f"carry: {exc}", file=sys.stderr)
            return 2
        share = total / SUBMISSION_LIMIT
        print(f"commits since {args.since} and uncommitted changes: {total / 2**20:.1f} MiB of diffs, "
              f"{share:.0%} of a stop's {SUBMISSION_LIMIT // 2**20} MiB")
        return 0 if total <= SUBMISSION_LIMIT else 1
    if not args.run_dir:
        parser.error(f"{args.command} needs the run directory")
    run = resolve(args.run_dir)
    carry = resolve(args.carry) if args.carry else default_carry(run)
    try:
        if args.command == "show":
            actions = plan(run, args.finished_only)
            for rel, action in actions.items():
                print(f"{action:8.8s} {rel}" if not action.startswith("leave") else f"leave    {rel} ({action[7:]})")
            kept = sum((run / r).stat().st_size for r, a in actions.items() if a == "copy")
            print(f"{shown(run)}: {sum(a != 'copy' and not a.startswith('leave') for a in actions.values())} "
                  f"model(s) to export or slim, {kept / 2**20:.1f} MiB copied as they are")
        elif args.command == "save":
            manifest = save(run, carry, args.note, args.finished_only)
            print(f"{shown(carry)}: " + describe(manifest))
        else:
            manifest = restore(run, carry, args.force)
            print(f"{shown(run)} restored from {shown(carry)}: " + describe(manifest))
    except StudyError as exc:
        print(f"carry: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
