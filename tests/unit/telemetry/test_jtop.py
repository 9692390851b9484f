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


def _fake_jtop_module():
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("edgeasr_tests_fake_jtop", Path(__file__).parent / "fake_jtop.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_jtop_is_read_after_each_update_and_stamped_by_it(tmp_path):
    """Regression (issue 22, item 12): the sampler read ``jtop.power`` on its own timer: between the service's
    updates it read the same values again, each copy stamped at another time. Now each reading waits for the
    service's next update (``ok()``) and is stamped then: one sample per update, a few ms after it, never a stale
    copy. The fake service is stepped by the test (manual mode): no sleeping."""
    from runner.telemetry.samplers.jtop import JtopSampler

    fake_mod = _fake_jtop_module()
    made = []

    def factory(interval):
        made.append(fake_mod.FakeJtop(interval=0.05, profile=lambda t: 4000 if t < 0.3 else 9000))
        return made[-1]

    socket = tmp_path / "jtop.sock"
    socket.write_text("")
    sampler = JtopSampler(interval_ms=20, socket_path=str(socket), jtop_class=factory)
    with sampler:
        for _ in range(12):  # 0.6 s of the service's 50 ms updates, the power stepping up at 0.3 s
            made[0].push()
        made[0].finish()
    updates = made[0].updates
    assert {mw for _, mw in updates} == {4000, 9000}
    samples = sampler.samples
    assert len(samples) <= len(updates) + 1  # not one per 20 ms timer tick: one per 50 ms update
    for s in samples:
        before = [u for u in updates if u[0] <= s.mono_ns]
        t_update, mw = before[-1]
        assert s.mono_ns - t_update < 30_000_000 and s.total_w == mw / 1000  # stamped by its own update
    assert len({s.mono_ns for s in samples}) == len(samples)


def test_jtop_power_supply_monitors_are_left_out_of_the_rail_sum():
    """Regression (issue 22, item 12): jtop lists /sys/class/power_supply monitors (a USB-C source) among the rails,
    and a board without an input rail summed them in: the board counted twice. They are left out of the rails and
    the sum, and kept apart."""
    from runner.telemetry.samplers.jtop import power_supply_w

    power = {"rail": {"VDD_GPU_SOC": {"power": 4000, "online": True},
                      "VDD_CPU_CV": {"power": 1000, "online": True},
                      "USBC000:001": {"power": 9000, "online": True, "status": "Charging"}},
             "tot": {"power": 14000}}
    rails, total_w, kind = power_fields(power)
    assert kind == "partial_sum_of_rails" and total_w == 5.0 and "USBC000:001" not in rails
    assert power_supply_w(power) == {"USBC000:001": 9.0}
