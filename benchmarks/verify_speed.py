"""What verification against canonical FER-2013 adds to a load, cold and cached.

    python benchmarks/verify_speed.py [--data PATH]

Cold: the work a first load adds for verification (hashing every file's bytes and every image's
pixels, then :func:`fer_utils.verify.verify_images`), against the time to read the files' bytes alone,
the I/O ceiling of any loader (the ratio says how much of a read verification costs). Cached: a load
from the decode cache with ``verify="off"`` against one with the default verification (the cache keeps
the verdict, so a cached load reads it back; judging the cached arrays again is timed too). Best of
three for each. The budgets: at most +1 s cold and +0.2 s cached on the genuine copy. Results go to
``benchmarks/results/verify_speed_cpu.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from fer_utils.data import default_data_path, load_fer2013  # noqa: E402
from fer_study.bench import write_json  # noqa: E402
from fer_utils.evaluate import hardware_info, library_versions  # noqa: E402
from fer_utils.verify import default_fingerprint, hash64, pixel_hashes, reference_key, verify_images  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "verify_speed_cpu.json"
BUDGET_COLD_S = 1.0
BUDGET_CACHED_S = 0.2


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    root = Path(args.data) if args.data else default_data_path()
    files = sorted(p for top in ("train", "test") for p in (root / top).rglob("*.jpg"))
    if not files:
        raise SystemExit(f"verify_speed: no image folders under {root.name}")
    blobs = [p.read_bytes() for p in files]  # warm the OS file cache, as a loader's second read finds it
    read_s = best_of(lambda: [p.read_bytes() for p in files])
    with tempfile.TemporaryDirectory() as cache:
        data = load_fer2013(root, cache_dir=cache)
        default_fingerprint()
        reference_key()
        file_hash_s = best_of(lambda: [hash64(b) for b in blobs])
        pixel_hash_s = best_of(lambda: pixel_hashes(data.images))
        hashes = [hash64(b) for b in blobs]
        order = {p.stem: i for i, p in enumerate(files)}
        file_hashes = np.array([hashes[order[i]] for i in data.ids], dtype=np.uint64)
        judge = lambda: verify_images(data.images, data.labels, data.splits, data.ids,  # noqa: E731
                                      file_hashes=file_hashes)
        match_s = best_of(judge)
        cached_off = best_of(lambda: load_fer2013(root, cache_dir=cache, verify="off"))
        cached_on = best_of(lambda: load_fer2013(root, cache_dir=cache))
    cold_added = file_hash_s + pixel_hash_s + match_s
    cached_added = cached_on - cached_off
    result = {
        "images": len(data), "verdict": data.verification.summary(),
        "read_files_s": round(read_s, 3),
        "cold": {"hash_files_s": round(file_hash_s, 3), "hash_pixels_s": round(pixel_hash_s, 3),
                 "match_s": round(match_s, 3), "added_s": round(cold_added, 3),
                 "ratio_to_reading_the_files": round(cold_added / read_s, 2), "budget_s": BUDGET_COLD_S,
                 "within_budget": cold_added <= BUDGET_COLD_S},
        "cached": {"load_without_s": round(cached_off, 3), "load_with_s": round(cached_on, 3),
                   "added_s": round(cached_added, 3), "judge_again_s": round(match_s, 3),
                   "budget_s": BUDGET_CACHED_S, "within_budget": cached_added <= BUDGET_CACHED_S},
        "hardware": hardware_info(), "versions": library_versions(),
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"{result['images']:,} images; {result['verdict']}")
    print(f"cold load: verification adds {cold_added:.2f} s (files {file_hash_s:.2f} + pixels {pixel_hash_s:.2f} "
          f"+ matching {match_s:.2f}); reading the files alone takes {read_s:.2f} s "
          f"(ratio {cold_added / read_s:.2f}); budget +{BUDGET_COLD_S:g} s")
    print(f"cached load: {cached_off:.3f} s without, {cached_on:.3f} s with verification: "
          f"{cached_added:+.3f} s (judging the cached arrays again: {match_s:.3f} s); budget +{BUDGET_CACHED_S:g} s")
    write_json(args.out, result)
    return 0 if cold_added <= BUDGET_COLD_S and cached_added <= BUDGET_CACHED_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
