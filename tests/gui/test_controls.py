from gui.controls import sections_for, unknown_capabilities


def kinds(caps):
    return [s.kind for s in sections_for("x", caps)]


def test_stage_gets_motion_with_stop_and_plot():
    (motion,) = sections_for("stage", ["Movable", "Stoppable"])
    assert motion.kind == "motion"
    assert motion.controls == ("position", "target", "jog", "stop", "plot")
    assert motion.stream == "stage/position"


def test_camera_with_roi_exposure_and_cooler():
    caps = ["FrameProducer", "ExposureControl", "RoiSelectable", "Cooled", "Triggerable"]
    camera, cooler = sections_for("camera", caps)
    assert camera.kind == "camera" and camera.stream == "camera/frames"
    assert {"image", "colormap", "contrast", "histogram", "roi", "exposure", "trigger"} <= set(
        camera.controls
    )
    assert cooler.kind == "cooler" and cooler.controls == ("setpoint", "value", "state")


def test_camera_without_roi_has_no_roi_drawing():
    (camera,) = sections_for("cam", ["FrameProducer"])
    assert "roi" not in camera.controls


def test_supply_output_switch_only_when_switchable():
    assert sections_for("psu", ["VoltageSource"])[0].controls == ("setpoint", "limit", "readback")
    assert "output" in sections_for("psu", ["VoltageSource", "Switchable"])[0].controls
    assert kinds(["Switchable"]) == ["switch"]


def test_readings_plot_their_stream():
    meter, thermo = sections_for("m", ["Readable", "TemperatureSensor"])
    assert (meter.stream, thermo.stream) == ("m/reading", "m/temperature")
    assert "plot" in meter.controls and "plot" in thermo.controls


def test_unknown_capabilities_are_reported_not_fatal():
    assert kinds(["Teleporter"]) == []
    assert unknown_capabilities(["Movable", "Teleporter"]) == ["Teleporter"]
