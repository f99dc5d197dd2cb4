"""One CPU name, two kinds of processor: tables and reference scaling keep them apart.

Cloud hosts report ``AMD EPYC`` for a Zen 3 (512 KiB L2 per core) and a Zen 4
(1 MiB); Pareto v2 measured the same networks 10-35 % apart relative to the
reference network on the two (BENCHMARKS.md, sixth session), so a table of one
is neither reused nor reference-scaled on the other.
"""

from __future__ import annotations

from ednas import parse_arch
from ednas.latency import LatencyTable, space_ops
from ednas.latency import build as lut_build
from ednas.latency.measure import reference_spec, same_machine, table_reference
from ednas.runtime import board
from ednas.runtime.board.timing import cpu_id

MICRO_SPACE = "stem_k11_m1_c8_s1 | ir_k3.5.7_e2_c8 | ir_k3.5_e2_c16_s2 | head_c16"

ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 1
cache size\t: 512 KB

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
"""
ZEN4 = ZEN3.replace("model\t\t: 1\n", "model\t\t: 17\n").replace("512 KB", "1024 KB")
ARM = """processor\t: 0
BogoMIPS\t: 48.00
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

Hardware\t: BCM2835
"""


def _machine(cid: str) -> dict:
    return {"system": "Linux", "arch": "x86_64", "cpu": "AMD EPYC", "cpu_id": cid, "cores": 2, "node": "vm"}


def test_cpu_id_tells_apart_processors_of_one_name_and_reads_only_the_first_processor():
    z3, z4 = cpu_id(ZEN3), cpu_id(ZEN4)
    assert z3 == "vendor_id AuthenticAMD, cpu family 25, model 1, cache size 512 KB"
    assert z4 == "vendor_id AuthenticAMD, cpu family 25, model 17, cache size 1024 KB"
    assert cpu_id(ARM) == "cpu implementer 0x41, cpu architecture 8, cpu variant 0x0, cpu part 0xd08"
    assert cpu_id("") == ""
    assert board.machine()["cpu_id"] == cpu_id()  # the record a table's header gets


def test_same_machine_needs_the_same_processor_kind_where_both_records_name_one():
    z3, z4 = _machine(cpu_id(ZEN3)), _machine(cpu_id(ZEN4))
    assert same_machine(z3, dict(z3, node="other"))  # the host's name is not its kind
    assert not same_machine(z3, z4)
    old = {k: v for k, v in z3.items() if k != "cpu_id"}  # a table from before cpu_id: compared as it always was
    assert same_machine(old, z4) and same_machine(z4, old)
    assert not same_machine(z3, dict(z3, cores=4))


def test_a_table_of_another_processor_kind_is_not_reference_scaled(monkeypatch):
    sp = parse_arch(MICRO_SPACE)
    here = board.machine()
    ref = dict(reference_spec(sp, 16, 4), ms=0.5)
    table = LatencyTable(target="host-ort", input_size=16, num_classes=4, entries={}, space=sp.format(),
                         meta={"measurement": {"runtime": "onnxruntime"}, "reference": ref, "machine": here})
    rt, why = table_reference(table)
    assert rt is not None and why == ""
    table.meta["machine"] = dict(here, cpu_id=here["cpu_id"] + " (another kind)")
    rt, why = table_reference(table)
    assert rt is None and "another kind of machine" in why


def test_the_table_cache_keeps_one_table_per_processor_kind(tmp_path, monkeypatch):
    sp = parse_arch(MICRO_SPACE)
    built = []

    def fake_build(target, space, input_size, num_classes, out=None, dtype=None, quant=None, **kw):
        built.append(board.machine()["cpu_id"])
        t = LatencyTable(target=target, input_size=input_size, dtype=dtype or "f32",
                         entries={op.key: 0.01 for op in space_ops(space, input_size, num_classes, dtype or "f32")})
        t.save(out)
        return t

    kind = {"now": ZEN3}
    monkeypatch.setattr(lut_build, "build_table", fake_build)
    monkeypatch.setattr(board, "machine", lambda: _machine(cpu_id(kind["now"])))
    cache = str(tmp_path / "cache")
    lut_build.target_table("host-ort", sp, 16, 4, cache)
    assert lut_build.cached_table("host-ort", sp, 16, 4, cache) is not None
    kind["now"] = ZEN4  # the same cache folder on a Zen 4: the Zen 3 table is not used
    assert lut_build.cached_table("host-ort", sp, 16, 4, cache) is None
    lut_build.target_table("host-ort", sp, 16, 4, cache)
    kind["now"] = ZEN3  # back on the Zen 3: its table is still there, nothing measured
    lut_build.target_table("host-ort", sp, 16, 4, cache)
    assert built == [cpu_id(ZEN3), cpu_id(ZEN4)]
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_a_table_file_of_another_processor_kind_is_not_resumed_here(tmp_path, monkeypatch):
    import json

    import pytest

    from ednas.errors import EdnasError
    from ednas.latency import build_table
    from ednas.latency.table import table_checksum

    sp = parse_arch(MICRO_SPACE)
    out = tmp_path / "lut.json"
    kw = dict(out=out, repeats=3, rounds=1, warmup=1, fit_archs=0)
    build_table("host-ort", sp, 16, 4, **kw)

    def rewrite(edit):
        d = json.loads(out.read_text())
        edit(d)
        d["checksum"] = table_checksum(d)
        out.write_text(json.dumps(d))
        return d

    here = board.machine()
    rewrite(lambda d: d["machine"].update(cpu_id=here["cpu_id"] + " (another kind)"))
    with pytest.raises(EdnasError, match=r"other settings \(target host-ort, machine .*another kind"):
        build_table("host-ort", sp, 16, 4, **kw)
    # a file from before cpu_id was recorded cannot tell: it resumes as it always did, measuring only what is missing
    gone = sorted(json.loads(out.read_text())["entries"])[0]
    rewrite(lambda d: (d["machine"].pop("cpu_id"), d["entries"].pop(gone)))
    calls = []
    real = board.measure_ops
    monkeypatch.setattr(board, "measure_ops", lambda keys, *a, **k: calls.extend(keys) or real(keys, *a, **k))
    build_table("host-ort", sp, 16, 4, **kw)
    assert calls == [gone]
