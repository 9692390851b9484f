"""jtop's power dict -> the sample's total, by the same input-rail rule as the tegrastats parser."""

from runner.telemetry.samplers.jtop import power_fields


def test_jtop_sum_of_rails_is_not_labelled_an_input_rail():
    """AGX Orin has no input rail: jtop's 'tot' is then a sum of rails, which is a partial sum, not an input."""
    power = {"rail": {"VDD_GPU_SOC": {"power": 4000}, "VDD_CPU_CV": {"power": 1000}, "VIN_SYS_5V0": {"power": 3000}},
             "tot": {"power": 8000, "name": "ALL"}}
    rails, total_w, kind = power_fields(power)
    assert kind == "partial_sum_of_rails" and total_w == 8.0
    assert rails == {"VDD_GPU_SOC": 4.0, "VDD_CPU_CV": 1.0, "VIN_SYS_5V0": 3.0}


def test_jtop_input_rail_is_the_total_where_the_board_has_one():
    power = {"rail": {"VDD_IN": {"power": 7000}, "VDD_CPU_GPU_CV": {"power": 2500}},
             "tot": {"power": 7000, "name": "VDD_IN"}}
    assert power_fields(power)[1:] == (7.0, "input_rail:VDD_IN")
    # even when jtop names its total otherwise, the input rail among the rails decides
    power["tot"] = {"power": 9500, "name": "ALL"}
    assert power_fields(power)[1:] == (7.0, "input_rail:VDD_IN")


def test_jtop_without_power_has_a_reason():
    assert power_fields({}) == ({}, None, "jtop reported no power rails")
