"""Parser tests over real tegrastats lines from every board we could find
(tests/fixtures/tegrastats/, sources in SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.telemetry.samplers.tegrastats_parse import parse_line, parse_text

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tegrastats"


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text(encoding="utf-8").splitlines()


def first(name: str):
    record = parse_line(fixture_lines(name)[0])
    assert record is not None
    return record


ALL_LINES = [
    pytest.param(path.name, i, line, id=f"{path.stem}-{i + 1}")
    for path in sorted(FIXTURES.glob("*.txt"))
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines())
]


def test_fixtures_cover_at_least_six_boards():
    boards = {p.stem.split("-jp")[0] for p in FIXTURES.glob("*.txt")}
    assert len(boards) >= 6, boards
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    for path in FIXTURES.glob("*.txt"):
        assert f"`{path.name}`" in sources, f"{path.name} has no source noted in SOURCES.md"


@pytest.mark.parametrize("name,index,line", ALL_LINES)
def test_every_real_line_parses_and_serialises(name, index, line):
    record = parse_line(line)
    assert record is not None
    assert record.ram_used_mib is not None and record.ram_total_mib is not None
    assert 0 < record.ram_used_mib <= record.ram_total_mib
    assert record.cpu, "every real line has a CPU list"
    data = json.loads(json.dumps(record.to_json()))
    for key in ("rails", "input_rail", "ram_used_mib", "ram_total_mib", "swap_used_mib",
                "gpu_load_pct", "gpu_freq_mhz", "cpu", "temps_c", "timestamp"):
        assert key in data


@pytest.mark.parametrize("name,index,line", ALL_LINES)
def test_cut_off_lines_never_raise(name, index, line):
    """A killed tegrastats leaves its last line cut anywhere: cut every line at
    every character; the parser must return None or a record, never raise,
    and must never invent a rail value that was not fully printed."""
    full = parse_line(line)
    full_rails = {r.name: r.inst_mw for r in full.rails}
    for cut in range(len(line)):
        record = parse_line(line[:cut])
        if record is None:
            continue
        for rail in record.rails:
            assert rail.inst_mw == full_rails[rail.name]


@pytest.mark.parametrize("text", ["", "   ", "\n", "garbage here", "RAM", "RAM 12/", "\x00\xff"])
def test_blank_and_garbage_give_none(text):
    assert parse_line(text) is None


def test_nano_jp4_rails_without_unit_and_input_rail():
    r = first("nano-jp4.txt")
    assert [x.name for x in r.rails] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    assert r.rail("POM_5V_IN").inst_mw == 1022 and r.rail("POM_5V_IN").avg_mw == 1022
    assert r.input_rail == "POM_5V_IN"
    assert r.total_power_w() == (1.022, "input_rail:POM_5V_IN")
    assert (r.iram_used_kb, r.iram_total_kb) == (0, 252)
    assert (r.swap_used_mib, r.swap_total_mib, r.swap_cached_mib) == (5, 1982, 1)
    assert (r.gpu_load_pct, r.gpu_freq_mhz) == (0, 76)
    assert (r.emc_load_pct, r.emc_freq_mhz) == (0, 204)
    assert r.timestamp is None
    assert r.temps_c["CPU"] == 36.5 and r.temps_c["thermal"] == 36.25


def test_tx2_vdd_sys_rails_input_rail_is_not_first():
    r = first("tx2.txt")
    assert [x.name for x in r.rails] == [
        "VDD_SYS_GPU", "VDD_SYS_SOC", "VDD_4V0_WIFI", "VDD_IN", "VDD_SYS_CPU", "VDD_SYS_DDR"]
    assert r.input_rail == "VDD_IN"
    assert r.total_power_w() == (3.056, "input_rail:VDD_IN")
    assert r.cpu[1] is None and r.cpu[2] is None, "'off' cores are None, not 0%"
    assert r.cpu[0].load_pct == 1 and r.cpu[0].freq_mhz == 345


def test_tx2_non_root_line_gpu_load_without_frequency():
    r = parse_line(fixture_lines("tx2.txt")[1])
    assert (r.gpu_load_pct, r.gpu_freq_mhz) == (0, None)
    assert (r.emc_load_pct, r.emc_freq_mhz) == (0, None)
    assert r.rail("VDD_4V0_WIFI").inst_mw == 633 and r.rail("VDD_4V0_WIFI").avg_mw == 527


def test_tx2_older_rail_names_instantaneous_not_average():
    r = parse_line(fixture_lines("tx2.txt")[2])
    assert r.rail("VDD_IN").inst_mw == 5201 and r.rail("VDD_IN").avg_mw == 3588
    assert r.total_power_w()[0] == pytest.approx(5.201), "integration must use inst, not tegrastats' mean"
    assert r.cpu[2].load_pct == 100 and r.cpu[2].freq_mhz == 2027


def test_tx1_legacy_cpu_form_shares_one_frequency():
    r = parse_line(fixture_lines("tx1.txt")[1])
    assert [c.load_pct for c in r.cpu] == [17, 13, 29, 5]
    assert {c.freq_mhz for c in r.cpu} == {408}
    assert (r.gpu_load_pct, r.gpu_freq_mhz) == (3, 76)
    assert (r.emc_load_pct, r.emc_freq_mhz) == (1, 408)
    assert r.rails == ()
    watts, reason = r.total_power_w()
    assert watts is None and "no power rails" in reason


def test_agx_xavier_has_no_input_rail_partial_sum():
    r = first("agx-xavier.txt")
    assert [x.name for x in r.rails] == ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"]
    assert r.input_rail is None
    watts, kind = r.total_power_w()
    assert kind == "partial_sum_of_rails"
    assert watts == pytest.approx((0 + 311 + 932 + 0 + 621 + 1482) / 1000)
    assert r.cpu[4] is None
    assert r.temps_c["GPU"] == 37.5, "the GPU temperature and the GPU rail are both kept"


def test_xavier_nx_and_orin_nx_vdd_in():
    nx = first("xavier-nx.txt")
    assert nx.input_rail == "VDD_IN" and nx.rail("VDD_CPU_GPU_CV").inst_mw == 738
    assert (nx.gpu_load_pct, nx.gpu_freq_mhz) == (62, 306)
    onx = first("orin-nx-jp5.txt")
    assert onx.rail("VDD_IN").inst_mw == 5299 and onx.rail("VDD_IN").avg_mw == 5299
    assert onx.total_power_w() == (5.299, "input_rail:VDD_IN")
    assert onx.cpu[4:] == (None, None, None, None)


def test_orin_nano_jp6_lower_case_temps_and_bracketed_gr3d():
    r = first("orin-nano-jp6.txt")
    assert r.timestamp == "05-15-2025 18:30:28"
    assert r.temps_c["cpu"] == 65.562 and r.temps_c["tj"] == 65.562
    assert (r.gpu_load_pct, r.gpu_freq_mhz, r.gpu_freqs_mhz) == (84, 713, (713,))
    assert r.total_power_w() == (17.946, "input_rail:VDD_IN")
    assert r.rail("VDD_IN").avg_mw == 15710
    assert (r.swap_used_mib, r.swap_total_mib, r.swap_cached_mib) == (2640, 16384, 202)


def test_agx_orin_jp5_repeated_nc_offline_sensors_and_no_input_rail():
    r = first("agx-orin-jp5.txt")
    assert [x.name for x in r.rails] == [
        "VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "NC", "VDDQ_VDD2_1V8AO", "NC#2"]
    assert r.input_rail is None, "VIN_SYS_5V0 is one supply, not the board input"
    watts, kind = r.total_power_w()
    assert kind == "partial_sum_of_rails"
    assert watts == pytest.approx((2399 + 400 + 4032 + 0 + 301 + 0) / 1000)
    assert r.temps_c["CV0"] is None and r.temps_c["GPU"] is None, "-256C means offline"
    assert r.temps_c["CPU"] == 42.593
    assert r.timestamp == "04-24-2023 00:01:24"
    assert (r.gpu_load_pct, r.gpu_freq_mhz) == (0, 0)


def test_agx_orin_jp6_padded_line_and_missing_emc():
    padded = first("agx-orin-jp6.txt")
    assert (padded.gpu_load_pct, padded.gpu_freqs_mhz) == (0, (305, 305))
    assert padded.temps_c["soc0"] == 48.843 and padded.temps_c["gpu"] == 47.812
    assert padded.swap_used_mib == 4915
    assert [x.name for x in padded.rails] == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]
    bare = parse_line(fixture_lines("agx-orin-jp6.txt")[1])
    assert (bare.emc_load_pct, bare.emc_freq_mhz) == (None, None)
    assert (bare.gpu_load_pct, bare.gpu_freq_mhz) == (0, None)


def test_agx_orin_jp7_three_values_and_two_value_temps():
    r = first("agx-orin-jp7.txt")
    gpu = r.rail("VDD_GPU_SOC")
    assert (gpu.inst_mw, gpu.avg_mw, gpu.max_mw) == (5139, 5139, 5139)
    assert r.temps_c["cpu"] == 52.968
    assert r.to_json()["temps_max_c"]["cpu"] == 52.968
    assert (r.gpu_load_pct, r.gpu_freq_mhz) == (12, 1300)
    assert (r.emc_load_pct, r.emc_freq_mhz) == (3, 3199)
    assert r.input_rail is None


def test_thor_vin_is_the_input_rail_not_vin_sys_5v0():
    r = first("thor-jp7.txt")
    assert r.input_rail == "VIN"
    vin = r.rail("VIN")
    assert (vin.inst_mw, vin.avg_mw, vin.max_mw) == (87426, 43713, 87426)
    assert r.total_power_w() == (87.426, "input_rail:VIN")
    assert r.gpu_load_pct is None and r.gpu_freq_mhz is None, "Thor prints no GR3D_FREQ"
    assert len(r.cpu) == 14
    assert r.temps_c["soc345"] == 63.281


def test_to_json_shape():
    data = first("agx-orin-jp5.txt").to_json()
    assert data["rails"]["NC#2"] == {"inst_mw": 0.0, "avg_mw": 0.0, "max_mw": None}
    assert data["input_rail"] is None
    assert data["cpu"][0] == {"load_pct": 0, "freq_mhz": 729}
    assert data["temps_c"]["CV1"] is None
    off = first("tx2.txt").to_json()
    assert off["cpu"][1] is None


def test_verbose_extra_spaces_do_not_matter():
    line = fixture_lines("orin-nano-jp6.txt")[0]
    spaced = parse_line(line.replace(" ", "   "))
    assert spaced.to_json() == parse_line(line).to_json()


def test_hypothetical_fields_found_by_name_in_any_order():
    """Reordering whole fields must not change what is read."""
    line = fixture_lines("orin-nx-jp5.txt")[0]
    ram_part, rest = line.split(" SWAP ", 1)
    reordered = "SWAP " + rest + " " + ram_part
    assert parse_line(reordered).to_json() == parse_line(line).to_json()


def test_parse_text_drops_an_unterminated_last_line():
    lines = fixture_lines("tx2.txt")
    text = "\n".join(lines[:2]) + "\n" + lines[2][:40]
    records = parse_text(text)
    assert len(records) == 2
    assert len(parse_text("\n".join(lines) + "\n")) == len(lines)
