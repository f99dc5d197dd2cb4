import pytest

from ednas.arch.spec import PRESETS, load_arch, parse_arch, preset
from ednas.errors import EdnasError
from tests.conftest import TINY_SPACE


@pytest.mark.parametrize("text", [p[0] for p in PRESETS.values()] + [TINY_SPACE])
def test_round_trip(text):
    spec = parse_arch(text)
    assert parse_arch(spec.format()) == spec
    assert spec.format() == parse_arch(spec.format()).format()
    elastic = any(b.depths or b.widths for stage in spec.stages for b in stage)
    for derived in (spec.largest(), spec.smallest_kernels(), spec.smallest()) + (() if elastic else (spec.expanded(),)):
        assert parse_arch(derived.format()) == derived


def test_canonical_form_sorts_candidates_and_defaults():
    a = parse_arch("stem_k11_c16 | ir_k7.3.5_e6_c24_s2_r2 | head")
    assert a.format() == "stem_k11_m1_c16_s2 | ir_k3.5.7_e6_c24_s2_r2 | head_c1280"


def test_layers_expand_repeats_and_strides():
    spec = parse_arch("stem_k11_m1_c8_s1 | ir_k3_e6_c16_s2_r3 | head_c32")
    layers = list(spec.layers())
    assert [l.stride for l in layers] == [2, 1, 1]
    assert [l.cin for l in layers] == [8, 16, 16]
    assert [l.residual for l in layers] == [False, True, True]


def test_with_picks_drops_skipped_and_keeps_strides():
    spec = parse_arch(TINY_SPACE)
    picks = [dict(kernel=k, expansion=e, skip=s) for k, e, s in [(3, 1, False), (5, 6, False), (7, 3, True), (5, 2, False)]]
    d = spec.with_picks(picks)
    assert d.is_fixed
    assert d.format() == "stem_k11_m1_c8_s1 | ir_k3_e1_c8 | ir_k5_e6_c16_s2 | ir_k5_e2_c24_s2 | head_c32"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("stem_k11_c16 | ir_k4_e6_c24 | head_c8", "stage 1 block 0 ('ir_k4_e6_c24'): field 'k' = 4"),
        ("stem_k11_c16 | ir_k3_e6_c24 ir_k3_x2_c8 | head_c8", "stage 1 block 1 ('ir_k3_x2_c8'): unknown field 'x2'"),
        ("stem_k11_c16 | ir_k3_e6_s2 | head_c8", "stage 1 block 0 ('ir_k3_e6_s2'): field 'c' is missing"),
        ("stem_k9_c16 | ir_k3_e6_c8 | head_c8", "stage 0 block 0 ('stem_k9_c16'): field 'k' = 9"),
        ("stem_k11_c16 | ir_k3_e6_c8_s3 | head_c8", "field 's' = 3"),
        ("stem_k11_c16 | ir_k3_e6_c24_s2_skip proj_c24 | head_c8", "stage 1 block 1 ('proj_c24'): a 'proj' block belongs to a fixed"),
        ("stem_k11_c16 | ir_k3_e1.6_c24 | head_c8", "field 'e' = 1.6"),
        ("stem_k11_c16 | ir_k3_e6_c8 | ir_k3_e6_c8", "the last stage must be the head"),
        ("ir_k3_e6_c8 | ir_k3_e6_c8 | head_c8", "the first stage must be the stem"),
        ("stem_k11_c16 | | head_c8", "empty stage"),
        ("stem_k11_c16 | conv_k3_c8 | head_c8", "unknown op 'conv'"),
    ],
)
def test_bad_arch_strings_name_the_place(text, fragment):
    with pytest.raises(EdnasError) as e:
        parse_arch(text)
    assert fragment in str(e.value)


def test_load_arch_preset_file_and_errors(tmp_path):
    spec, size = load_arch("cifar")
    assert size == 32 and spec == preset("cifar")
    f = tmp_path / "a.yaml"
    f.write_text(f"arch: '{TINY_SPACE}'\ninput_size: 32\n")
    assert load_arch(str(f)) == (parse_arch(TINY_SPACE), 32)
    with pytest.raises(EdnasError, match="does not exist"):
        load_arch(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("arch: 'stem_k11_c16 | ir_k2_c8 | head'\n")
    with pytest.raises(EdnasError, match="bad.yaml.*stage 1 block 0"):
        load_arch(str(bad))
    with pytest.raises(EdnasError, match="unknown arch preset|stage"):
        load_arch("nope")
