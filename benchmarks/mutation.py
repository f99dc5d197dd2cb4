"""Mutation testing of the modules that hold the paper's equations: does the suite notice when an equation is wrong?

mutmut changes one thing at a time in the code (an operator, a constant, a
comparison, a returned value: a *mutant*) and runs the tests that cover the
changed function; a mutant is *killed* when a test fails.  The share of
mutants killed says how much of the equations the tests really pin down; a
surviving mutant is either a gap in the tests or a change that does not
matter (an error message's wording, an equivalent rewrite).

Modules (and what of them is mutated):

=====================  ===============================  ===========
file                   equations                        mutated
=====================  ===============================  ===========
nn/metakernel.py       meta-kernel, eq. 1 and 9         all
nn/layers.py           BN folding, eq. 2                all
nn/repconv.py          branch fusion, eq. 1-2           all
nn/fuse.py             the fusion walker                all
search/gumbel.py       Gumbel-softmax, eq. 14-15        all
search/loss.py         the latency loss, eq. 12-13      all
search/feedback.py     the feedback merge, eq. 3-5      all
latency/model.py       E[LAT], eq. 11                   ``expected`` and its helpers
=====================  ===============================  ===========

The tests run against them are the fast equation tests (``TESTS``):
equivalences, formulas, gradients against finite differences, and the
statistical tests of ``tests/test_equations.py``; no end-to-end search.

Resumable: the work lives in ``--work`` (default ``.mutation/`` in the
repository, ignored by git); mutants are run in chunks and every result is
kept, so rerunning the same command continues where it stopped.  A change to
the mutated files, the tests run or their helpers starts afresh (so does
``--fresh``).  Writes
``benchmarks/results/mutation.json`` (per module: killed, survived, no tests,
timeout; the surviving mutants with their diffs).

    python benchmarks/mutation.py                 # everything (hours on a busy 2-core machine)
    python benchmarks/mutation.py --quick         # search/loss.py only (minutes): proves the set-up
    python benchmarks/mutation.py --modules search/gumbel.py search/feedback.py
    python benchmarks/mutation.py --time-limit 3600   # stop starting chunks after an hour; report what was checked

Mutants are run in a seeded random order (``--order-seed``), so that the
ones checked when a ``--time-limit`` stops the run are a random sample of
the rest: the score is then over the mutants checked, with a 95 % Wilson
interval, and the number not checked is reported beside it.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_result  # noqa: E402

# file -> mutant name patterns that are counted (fnmatch on the part after the module name)
MODULES = {
    "nn/metakernel.py": ["*"],
    "nn/layers.py": ["*"],
    "nn/repconv.py": ["*"],
    "nn/fuse.py": ["*"],
    "search/gumbel.py": ["*"],
    "search/loss.py": ["*"],
    "search/feedback.py": ["*"],
    "latency/model.py": ["xǁLatencyModelǁexpected__*", "xǁLatencyModelǁ_tensor__*", "xǁLatencyModelǁ_check_block__*"],
}
TESTS = [
    "tests/test_equations.py",
    "tests/test_nn.py",
    "tests/test_supernet_interface.py",
    "tests/test_search.py::test_beta_follows_the_formula",
    "tests/test_search.py::test_beta_guards",
    "tests/test_search.py::test_merge_makes_paths_identical_and_follows_eq3",
    "tests/test_search.py::test_tau_schedule",
    "tests/test_search.py::test_losses",
    "tests/test_search.py::test_alpha_gets_gradient_from_ce_and_latency",
    "tests/test_latency.py::test_table_from_a_dict_and_predict_sums_operators",
    "tests/test_latency.py::test_expected_with_one_hot_g_equals_predict",
    "tests/test_latency.py::test_expected_gradient_equals_finite_difference",
    "tests/test_latency.py::test_expected_follows_gumbel_samples_and_checks_the_supernet",
    "tests/test_latency.py::test_expected_latency_takes_the_supernets_dtype",
    "tests/test_feedback_dist.py",
]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 35: "suspicious", 36: "timeout",
          37: "caught by type check", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault", None: "not checked"}


def _fingerprint(modules: list[str]) -> str:
    """Of what decides the results: the mutated files, the test files run, their helpers, the settings."""
    files = [ROOT / "ednas" / m for m in modules] + sorted({ROOT / t.split("::")[0] for t in TESTS})
    files += [ROOT / "tests" / "conftest.py", ROOT / "tests" / "search_helpers.py", ROOT / "pyproject.toml", Path(__file__)]
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(ROOT)).encode() + p.read_bytes())
    h.update(json.dumps(modules).encode())
    return h.hexdigest()[:16]


def _prepare(work: Path, modules: list[str], fresh: bool) -> None:
    """A copy of the package and the tests, with mutmut's settings; afresh when what decides the results changed."""
    fp = _fingerprint(modules)
    stamp = work / "fingerprint.txt"
    if stamp.is_file() and stamp.read_text() == fp and not fresh:
        return
    if work.exists():
        print(f"sources, tests or modules changed: starting afresh in {work}", flush=True)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copytree(ROOT / "ednas", work / "ednas", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "pyproject.toml").read_text()
    text += "\n[tool.mutmut]\n" + "\n".join([
        'source_paths = ["ednas"]',
        "only_mutate = " + json.dumps([f"ednas/{m}" for m in modules]),
        "pytest_add_cli_args_test_selection = " + json.dumps(TESTS),
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]',
        'process_isolation = "forkserver"',  # torch is not fork-safe
        "use_git_change_detection = false",
        "timeout_multiplier = 10.0",
    ]) + "\n"
    (work / "pyproject.toml").write_text(text)
    stamp.write_text(fp)


def _mutmut(work: Path, *args: str, quiet: bool = False) -> int:
    env = {**os.environ, "PYTHONPATH": "", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL if quiet else None).returncode


def _results(work: Path) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for f in glob.glob(str(work / "mutants" / "ednas" / "**" / "*.py.meta"), recursive=True):
        out.update(json.loads(Path(f).read_text())["exit_code_by_key"])
    return out


def _module_of(name: str) -> str:
    mod = name.split(".x\u01c1")[0] if ".x\u01c1" in name else name.rsplit(".", 1)[0]
    return mod.removeprefix("ednas.").replace(".", "/") + ".py"


def _counted(name: str, modules: list[str]) -> bool:
    import fnmatch

    mod = _module_of(name)
    if mod not in modules:
        return False
    local = name[len("ednas." + mod[:-3].replace("/", ".")) + 1:]
    return any(fnmatch.fnmatch(local, p) for p in MODULES[mod])


def _show(work: Path, name: str) -> str:
    env = {**os.environ, "PYTHONPATH": ""}
    r = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work, env=env, capture_output=True, text=True)
    lines = [l for l in r.stdout.splitlines() if l.startswith(("+", "-")) and not l.startswith(("+++", "---"))]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modules", nargs="*", default=None, help=f"subset of {', '.join(MODULES)}")
    ap.add_argument("--quick", action="store_true", help="search/loss.py only")
    ap.add_argument("--work", default=str(ROOT / ".mutation"), help="working folder (kept between runs: resumable)")
    ap.add_argument("--chunk", type=int, default=40, help="mutants per mutmut invocation (an interruption loses at most one chunk)")
    ap.add_argument("--max-children", type=int, default=2, help="mutants run in parallel")
    ap.add_argument("--fresh", action="store_true", help="discard earlier results in --work and start afresh")
    ap.add_argument("--name", default=None, help="result name (default: mutation, or mutation_quick)")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds after which no new chunk is started (the rest: not checked)")
    ap.add_argument("--order-seed", type=int, default=0, help="seed of the random order the mutants are run in")
    args = ap.parse_args()
    modules = ["search/loss.py"] if args.quick else (args.modules or list(MODULES))
    bad = [m for m in modules if m not in MODULES]
    if bad:
        sys.exit(f"unknown module(s) {bad}; expected some of {list(MODULES)}")
    work = Path(args.work)
    t0 = time.time()
    _prepare(work, modules, args.fresh)
    if not _results(work):  # generate the mutants and map tests to functions (a filter that matches nothing stops it there)
        print("generating mutants and running the tests once to map them to functions ...", flush=True)
        _mutmut(work, "run", "--max-children", str(args.max_children), "zzz-generate-only", quiet=True)
    pending = sorted(n for n, code in _results(work).items() if code is None and _counted(n, modules))
    random.Random(args.order_seed).shuffle(pending)  # any prefix is a random sample of what was left
    total = sum(1 for n in _results(work) if _counted(n, modules))
    print(f"{total} mutants counted, {len(pending)} still to run", flush=True)
    for i in range(0, len(pending), args.chunk):
        if args.time_limit is not None and time.time() - t0 > args.time_limit:
            print(f"time limit of {args.time_limit:.0f} s reached: {len(pending) - i} mutants not checked", flush=True)
            break
        chunk = pending[i : i + args.chunk]
        t = time.time()
        _mutmut(work, "run", "--max-children", str(args.max_children), *chunk)
        done = sum(1 for n, c in _results(work).items() if c is not None and _counted(n, modules))
        print(f"  {done}/{total} mutants done ({time.time() - t:.0f} s for this chunk)", flush=True)

    res = {n: c for n, c in _results(work).items() if _counted(n, modules)}
    per: dict[str, dict] = {}
    survivors = []
    for name, code in sorted(res.items()):
        status = STATUS.get(code, "suspicious")
        m = per.setdefault(_module_of(name), {"mutants": 0})
        m["mutants"] += 1
        m[status] = m.get(status, 0) + 1
        if status in ("survived", "no tests"):
            survivors.append({"mutant": name, "status": status, "diff": _show(work, name)})

    def score(d: dict) -> float | None:
        checked = d["mutants"] - d.get("not checked", 0) - d.get("skipped", 0)
        return round(100.0 * (d.get("killed", 0) + d.get("timeout", 0)) / checked, 1) if checked else None

    def wilson(d: dict) -> list[float] | None:
        """95 % Wilson interval of the killed share (percent), treating the checked mutants as a sample."""
        n = d["mutants"] - d.get("not checked", 0) - d.get("skipped", 0)
        if not n:
            return None
        p, z = (d.get("killed", 0) + d.get("timeout", 0)) / n, 1.96
        c, h = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return [round(100 * (c - h), 1), round(100 * (c + h), 1)]

    for d in per.values():
        d["killed_pct"] = score(d)
        d["killed_pct_95ci"] = wilson(d)
    overall: dict = {"mutants": len(res)}
    for d in per.values():
        for k, v in d.items():
            if k not in ("mutants", "killed_pct", "killed_pct_95ci"):
                overall[k] = overall.get(k, 0) + v
    overall["killed_pct"] = score(overall)
    overall["killed_pct_95ci"] = wilson(overall)
    write_result(args.name or ("mutation_quick" if args.quick else "mutation"), {
        "tool": "mutmut " + subprocess.run([sys.executable, "-m", "pip", "show", "mutmut"], capture_output=True, text=True).stdout.split("Version: ")[-1].split()[0],
        "modules": {m: MODULES[m] for m in modules},
        "tests": TESTS,
        "score": "killed (a timeout counts as killed) / checked; a mutant no test reaches counts as not killed; mutants not checked "
                 "(a --time-limit stopped the run) are left out, and were a random sample of the rest (seeded order)",
        "time_limit_s": args.time_limit,
        "order_seed": args.order_seed,
        "overall": overall,
        "per_module": per,
        "survivors": survivors,
        "wall_s": round(time.time() - t0, 1),
    })


if __name__ == "__main__":
    main()
