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
    python -m fer_utils.machinery.carry save runs/reference --commit --since REV --at 14:50
                                    # at 14:50 UTC, save and commit (REV: the commit the session started from)

The carried folder is ``results/<run name>-in-progress/`` unless ``--carry`` says otherwise. It is not a
publication (``fer_utils.machinery.publish`` does that once the run is complete) and is removed once
the run is published. What goes in, smallest that lets the run go on exactly as it would have:

* every file of the run directory except models and trainings: the executed notebooks (only those
  that finished: the others run again anyway), figures, metrics, predictions, notes, and the log
  (``run.log`` travels as ``run_log.txt``: logs are ignored by git); ``shipped/`` (notebook 06's
  exports) only once every notebook that trains an experiment has finished: before that, 06 runs
  again after them and exports the shipped models again;
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
:func:`commit_carry` (``save --commit``) does both: it amends the session's own carry commit when that is
the last commit, and commits anew otherwise, then says what the session's commits add up to. With
``--at HH:MM`` it waits until then (UTC) first, so that a save is made and committed before a session's
end even when the session is busy, or cut short, at that time: sessions that planned one save for their
last minutes have lost the run twice.
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
    from ..experiment import TRAINED_IN, training_notebook

    run = Path(run)
    if not run.is_dir():
        raise StudyError(f"{shown(run)}: no such run directory")
    done = finished_notebooks(run)
    # notebook 06 exports the shipped models from every experiment's metrics; while a notebook that trains
    # one has not finished (08, deferred), 06 runs again after it and exports them again
    summary_again = sorted(set(TRAINED_IN.values()) - done)
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
        elif top == "shipped" and summary_again:
            several = len(summary_again) > 1
            actions[key] = (f"leave: notebook 06 exports the shipped models again once notebook{'s' if several else ''} "
                            f"{' and '.join(summary_again)} {'have' if several else 'has'} finished")
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


def _commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The commit whose code made the save: HEAD, or the newest commit before it that is not a carry commit
    (a carry commit of this session is amended by the next save, and would then name a commit that is gone)."""
    try:
        log = subprocess.run(["git", "log", "-50", "--format=%h %s"], cwd=cwd or repo_root(), capture_output=True,
                             text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in log:
        sha, _, subject = line.partition(" ")
        if not subject.startswith(COMMIT_PREFIX):
            return sha
    return log[0].split(" ", 1)[0] if log else None


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
        f"python -m fer_utils.machinery.study --profile {manifest['run']} --status   # what --skip-finished would run again\n"
        f"python -m fer_utils.machinery.study --profile {manifest['run']} --skip-finished --defer 08\n"
        "```\n\n"
        "and at once, so that the session's save is made and committed even if the session is busy or cut short\n"
        "(HH:MM: a UTC time about half an hour before the session ends; REV: the commit it started from):\n\n"
        "```\n"
        f"python -m fer_utils.machinery.carry save runs/{manifest['run']} --commit --since REV --at HH:MM\n"
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


#: how every carry commit's subject begins (so that a later save of the same session can amend it)
COMMIT_PREFIX = "Carry the "


def _git(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


def commit_carry(carry: str | os.PathLike, since: str, message: str, cwd: str | os.PathLike | None = None,
                 tries: int = 5, wait: float = 10.0) -> str:
    """Commit the carried folder ``carry`` (and nothing else: other staged changes stay staged).

    It amends the last commit when that is this session's own carry commit: a commit after ``since`` (the
    commit the session started from, which has landed and is never rewritten) whose subject begins with
    :data:`COMMIT_PREFIX` and which changed nothing outside ``carry``. Otherwise it makes a new commit. A
    second save then replaces the first instead of adding its bytes to the stop's diffs. ``message``
    must begin with :data:`COMMIT_PREFIX`. Retries while another git command holds the index (``tries``
    times, ``wait`` seconds apart). Returns a line saying what it did; StudyError when ``since`` is not an
    ancestor of HEAD or git fails."""
    cwd = Path(cwd) if cwd else repo_root()
    if not message.startswith(COMMIT_PREFIX):
        raise ValueError(f"a carry commit's message begins with {COMMIT_PREFIX!r}")
    carry = Path(carry).resolve()
    try:
        rel = carry.relative_to(Path(_git(["rev-parse", "--show-toplevel"], cwd).stdout.strip()).resolve()).as_posix()
        since_sha = _git(["rev-parse", "--verify", "--quiet", f"{since}^{{commit}}"], cwd).stdout.strip()
        head = _git(["rev-parse", "HEAD"], cwd).stdout.strip()
    except ValueError:
        raise StudyError(f"{shown(carry)} is not inside the repository") from None
    except (OSError, subprocess.CalledProcessError):
        raise StudyError(f"{since}: not a commit of this repository") from None
    if _git(["merge-base", "--is-ancestor", since_sha, head], cwd, check=False).returncode:
        raise StudyError(f"{since} is not an ancestor of HEAD: it is not the commit this session started from")
    own = False
    if head != since_sha:
        subject = _git(["log", "-1", "--format=%s", head], cwd).stdout
        changed = _git(["diff-tree", "--no-commit-id", "--name-only", "-r", head], cwd).stdout.split()
        own = subject.startswith(COMMIT_PREFIX) and all(c == rel or c.startswith(rel + "/") for c in changed)
    for attempt in range(tries):
        added = _git(["add", "-A", "--", rel], cwd, check=False)
        if added.returncode == 0:
            if not _git(["diff", "--cached", "--quiet", head, "--", rel], cwd, check=False).returncode:
                return f"{rel}: nothing changed since the last commit; nothing committed"
            done = _git(["commit", "-q", *(["--amend"] if own else []), "-m", message, "--only", "--", rel],
                        cwd, check=False)
            if done.returncode == 0:
                sha = _git(["rev-parse", "--short", "HEAD"], cwd).stdout.strip()
                what = "amended this session's carry commit" if own else "committed"
                return f"{rel}: {what} as {sha}"
            error = done.stderr.strip() or done.stdout.strip()
        else:
            error = added.stderr.strip()
        if "index.lock" not in error or attempt + 1 == tries:
            raise StudyError(f"git could not commit {rel}: {error.splitlines()[-1] if error else 'no message'}")
        time.sleep(wait)
    raise StudyError(f"git could not commit {rel}")  # not reached


def commit_message(manifest: dict) -> str:
    """The subject of a carry commit: what the save holds, from its manifest."""
    kind = "save of the finished notebooks" if manifest["finished_only"] else "full save"
    done = ", ".join(manifest["finished_notebooks"]) or "none"
    note = f"; {manifest['note']}" if manifest.get("note") else ""
    return (f"{COMMIT_PREFIX}{manifest['run']} run: {kind} at {manifest['saved_utc']} (notebooks finished: {done}; "
            f"{len(manifest['files'])} files, {manifest['bytes'] / 2**20:.1f} MiB{note})")


def wait_until(clock: str, now: datetime | None = None) -> float:
    """Seconds from ``now`` (UTC) until the next ``HH:MM`` UTC (today's, or tomorrow's once it has passed).
    ValueError on a malformed time."""
    try:
        hour, minute = (int(part) for part in clock.split(":"))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise ValueError(f"--at takes a UTC time as HH:MM, got {clock!r}") from None
    now = now or datetime.now(timezone.utc)
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    seconds = (target - now).total_seconds()
    return seconds if seconds >= 0 else seconds + 86400


def _print_cost(since: str) -> int:
    """Print what the commits since ``since`` add up to against a stop's limit; 1 when over it, else 0."""
    total = submission_bytes(since)
    print(f"commits since {since} and uncommitted changes: {total / 2**20:.1f} MiB of diffs, "
          f"{total / SUBMISSION_LIMIT:.0%} of a stop's {SUBMISSION_LIMIT // 2**20} MiB")
    return 0 if total <= SUBMISSION_LIMIT else 1


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
    parser.add_argument("--since", help="cost, save --commit: the commit the session started from")
    parser.add_argument("--commit", action="store_true",
                        help="save: commit the carried folder (amending this session's own carry commit when it is "
                             "the last one), then say what the session's commits add up to; needs --since")
    parser.add_argument("--at", metavar="HH:MM", help="save: wait until this UTC time first (run it in the background)")
    args = parser.parse_args(argv)
    if args.command != "save" and (args.commit or args.at):
        parser.error("--commit and --at go with save")
    if args.commit and not args.since:
        parser.error("save --commit needs --since COMMIT (the commit the session started from)")
    if args.at:
        try:
            delay = wait_until(args.at)
        except ValueError as exc:
            parser.error(str(exc))
        print(f"carry: saving at {args.at} UTC, in {delay / 60:.0f} min", flush=True)
        time.sleep(delay)
    if args.command == "cost":
        if not args.since:
            parser.error("cost needs --since COMMIT (the commit the session started from)")
        try:
            return _print_cost(args.since)
        except StudyError as exc:
            print(f"carry: {exc}", file=sys.stderr)
            return 2
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
            if args.commit:
                print(commit_carry(carry, args.since, commit_message(manifest)))
                return _print_cost(args.since)
        else:
            manifest = restore(run, carry, args.force)
            print(f"{shown(run)} restored from {shown(carry)}: " + describe(manifest))
    except StudyError as exc:
        print(f"carry: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
