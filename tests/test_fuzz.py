"""Property-based tests (hypothesis): any input to a parser gives a valid object or ednas's own error, never another exception.

The parsers a user's text reaches: the architecture grammar (and its
formatter: a round trip), the config loader (YAML files of random content
and shape), the latency-table loader (random JSON, random bytes) and the
data-spec parser.  Examples are drawn deterministically (``derandomize``),
so a run is reproducible and a failure is shown with its input.
"""

import json
import math
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ednas.arch.spec import KERNEL_CHOICES, MAX_EXPANSION, STEM_KERNELS, ArchSpec, BlockSpec, HeadSpec, StemSpec, parse_arch
from ednas.config import leaves, resolve_config
from ednas.data import DataSpec, load_data, parse_spec
from ednas.errors import EdnasError
from ednas.latency import LatencyTable, Op, load_table
from ednas.latency.ops import DTYPES, OP_TYPES
from ednas.latency.table import FORMAT, FORMAT_VERSION
from ednas.pipeline import RunConfig

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# -- the architecture grammar -------------------------------------------------------------------------

stems = st.builds(StemSpec, kernel=st.sampled_from(STEM_KERNELS), mult=st.integers(1, 16), out=st.integers(1, 512), stride=st.sampled_from([1, 2]))
heads = st.builds(HeadSpec, out=st.integers(0, 2048), dropout=st.integers(0, 99).map(lambda d: d / 100.0))


@st.composite
def blocks(draw, fixed: bool):
    kernels = draw(st.sets(st.sampled_from(KERNEL_CHOICES), min_size=1, max_size=1 if fixed else 5))
    if fixed or draw(st.booleans()):
        expansions = {draw(st.integers(1, MAX_EXPANSION))}
    else:
        expansions = draw(st.sets(st.integers(2, MAX_EXPANSION), min_size=1, max_size=4))
    return BlockSpec(kernels=tuple(sorted(kernels)), expansions=tuple(sorted(expansions)), out=draw(st.integers(1, 512)),
                     stride=draw(st.sampled_from([1, 2])), repeats=draw(st.integers(1, 4)), branches=draw(st.booleans()))


@st.composite
def archs(draw):
    fixed = draw(st.booleans())
    stages = draw(st.lists(st.lists(blocks(fixed), min_size=1, max_size=3).map(tuple), min_size=1, max_size=4).map(tuple))
    return ArchSpec(stem=draw(stems), stages=stages, head=draw(heads))


@FUZZ
@given(archs())
def test_arch_format_then_parse_is_the_identity(spec):
    text = spec.format()
    assert parse_arch(text) == spec
    assert parse_arch(text).format() == text


# tokens the grammar knows, glued at random: most strings are near misses, which is where parsers break
TOKENS = ["stem", "ir", "head", "_k", "_e", "_c", "_s", "_r", "_m", "_d", "_skip", "_acb", "3", "5", "7", "11", "0", "1", "16",
          ".", "..", "|", " ", "-1", "99999999999999999999", "x", "_", "k3.5.7", "e3.6", "\t", "\u00e9", "\x00"]


@FUZZ
@given(st.one_of(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join), st.text(max_size=80)))
def test_any_arch_text_parses_or_is_an_arch_error(text):
    try:
        spec = parse_arch(text)
    except EdnasError:
        return
    assert isinstance(spec, ArchSpec) and parse_arch(spec.format()) == spec


# -- the config loader ----------------------------------------------------------------------------------

PATHS = [leaf.path for leaf in leaves(RunConfig)]
SECTIONS = sorted({p.split(".")[0] for p in PATHS if "." in p})
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**62, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["1e999", "nan", "inf", "-inf", "0x10", "1_000", "true", "none", "null", "int8", "host-ort", "digits", "cifar"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)
keys = st.one_of(st.sampled_from(PATHS + SECTIONS + ["search_epochs", "batch_size", "budget_ms", "quant"]), st.text(max_size=10))


@st.composite
def config_trees(draw):
    tree: dict = {}
    for key in draw(st.lists(keys, max_size=6)):
        node, parts = tree, key.split(".")
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            node[parts[-1]] = draw(values)
    return tree


def _resolve(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        cfg = resolve_config(RunConfig, {"out": str(tmp_path / "o")}, yaml_path=str(path))
    except EdnasError:
        return None
    assert isinstance(cfg, RunConfig)
    for leaf in leaves(RunConfig):  # every float that got through is a number a range check can trust
        v = cfg
        for p in leaf.path.split("."):
            v = getattr(v, p)
        assert not (isinstance(v, float) and not math.isfinite(v)), leaf.path
    return cfg


@FUZZ
@given(config_trees())
def test_any_yaml_tree_resolves_or_is_an_ednas_error(tmp_path, tree):
    _resolve(tmp_path, yaml.safe_dump(tree, allow_unicode=True))


@FUZZ
@given(st.one_of(st.text(max_size=120), st.lists(st.sampled_from(["search:", "\n", "  ", "epochs: 3", "- a", "[", "]", "{", "}", ": ",
                                                                     "&a", "*a", "!!python/object:os.system", "\t", "lr: .inf", "'"]),
                                                   max_size=20).map("".join)))
def test_any_yaml_text_resolves_or_is_an_ednas_error(tmp_path, text):
    _resolve(tmp_path, text)


# -- the latency-table loader ---------------------------------------------------------------------------

op_keys = st.builds(lambda t, h, c, k, s, d: Op(t, h, h, c, c, k, s, 1, 1, d).key, st.sampled_from(OP_TYPES), st.integers(1, 64),
                    st.integers(1, 64), st.sampled_from([0, 1, 3, 5]), st.sampled_from([1, 2]), st.sampled_from(DTYPES))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=5)
entries = st.dictionaries(st.one_of(op_keys, st.text(max_size=12)),
                          st.one_of(st.floats(), st.integers(), st.fixed_dictionaries({"ms": st.one_of(st.floats(), st.integers(), st.text())}),
                                    json_values),
                          max_size=4)


@st.composite
def table_docs(draw):
    d = {"format": draw(st.sampled_from([FORMAT, FORMAT, "other", 1])), "format_version": draw(st.sampled_from([FORMAT_VERSION, FORMAT_VERSION, 2, "1"])),
         "target": draw(st.one_of(st.sampled_from(["host-ort", "tda2x"]), json_values)),
         "input_size": draw(st.one_of(st.sampled_from([32, 224]), json_values)), "entries": draw(st.one_of(entries, json_values))}
    for k in draw(st.lists(st.sampled_from(["constant_ms", "policy", "dtype", "num_classes", "space", "key_version", "checksum", "measurement"]),
                           max_size=4)):
        d[k] = draw(json_values)
    for k in draw(st.lists(st.sampled_from(list(d)), max_size=2)):
        d.pop(k, None)
    return d


def _load(tmp_path, raw: bytes):
    path = tmp_path / "lut.json"
    path.write_bytes(raw)
    try:
        t = load_table(path)
    except EdnasError:
        return
    assert isinstance(t, LatencyTable)
    assert all(isinstance(e["ms"], float) and math.isfinite(e["ms"]) and e["ms"] >= 0 for e in t.entries.values())
    t.save(tmp_path / "again.json")  # a table that loads writes out and loads again, equal
    assert load_table(tmp_path / "again.json").entries == t.entries


@FUZZ
@given(table_docs())
def test_any_table_json_loads_or_is_a_latency_table_error(tmp_path, doc):
    _load(tmp_path, json.dumps(doc).encode())


@FUZZ
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode), st.just(b"[" * 100000)))
def test_any_bytes_as_a_table_load_or_are_a_latency_table_error(tmp_path, raw):
    _load(tmp_path, raw)


# -- the data-spec parser ---------------------------------------------------------------------------------

options = st.lists(st.tuples(st.sampled_from(["classes", "n", "size", "x", ""]), st.one_of(st.integers(-5, 10**7).map(str), st.text(max_size=4))),
                   max_size=4).map(lambda kv: ",".join(f"{k}={v}" for k, v in kv))
specs = st.one_of(
    st.text(max_size=40),
    st.builds(lambda k, a: f"{k}:{a}", st.sampled_from(["digits", "cifar10", "cifar100", "folder", "synthetic", "mnist", ""]),
              st.one_of(options, st.text(alphabet=string.printable + "\x00\u00e9", max_size=20))),
)


@FUZZ
@given(specs)
def test_any_data_spec_parses_or_is_a_data_error(spec):
    try:
        ds = parse_spec(spec)
    except EdnasError:
        return
    assert isinstance(ds, DataSpec)
    if ds.kind == "synthetic":
        o = dict(ds.options)
        assert o["classes"] >= 2 and 8 <= o["size"] <= 1024 and o["n"] * 3 * o["size"] ** 2 <= 2**31


@FUZZ
@given(st.builds(lambda k, a: f"{k}:{a}", st.sampled_from(["cifar10", "cifar100", "folder"]),
                 st.text(alphabet=string.ascii_letters + "/._-~ \x00", min_size=1, max_size=16)))
def test_any_data_directory_loads_or_is_a_data_error(spec):
    """A directory spec that names nothing usable is a :class:`DataError`, never an OSError or ValueError."""
    with pytest.raises(EdnasError):
        load_data(spec)
