//! Temperature sweep in Zig: step the supply voltage, let the sample settle, read the
//! thermometer (a table row: voltage, temperature). Arguments: volts_max, steps, settle_ms.
//! However the run ends, its cleanup switches the supply off.
//! Grants: psu:VoltageSource,Switchable thermo:TemperatureSensor
const labd = @import("labd");

fn sweep() labd.Error!void {
    const psu = try labd.VoltageSource.open_("psu");
    const output = try labd.Switchable.open_("psu");
    const thermo = try labd.TemperatureSensor.open_("thermo");
    const volts_max = labd.argF64("volts_max") orelse 5.0;
    const steps: i32 = @intFromFloat(labd.argF64("steps") orelse 6.0);
    const settle_ms: i32 = @intFromFloat(labd.argF64("settle_ms") orelse 200.0);
    if (steps < 2) return labd.Error.Inval;
    const first = (try thermo.temperature()).value;
    var last = first;
    try output.setOn(true);
    var i: i32 = 0;
    while (i < steps) : (i += 1) {
        const fraction = @as(f64, @floatFromInt(i)) / @as(f64, @floatFromInt(steps - 1));
        const volts = volts_max * fraction;
        try psu.setVoltage(volts);
        try labd.sleepMs(settle_ms);
        last = (try thermo.temperature()).value;
        _ = try labd.row("voltage,temperature", &.{ volts, last });
        try labd.checkpoint();
    }
    try labd.result("temperature_rise", last - first);
}

export fn run() i32 {
    return labd.status(sweep());
}

/// Called after run() however it ended (an error, a trap, the deadline, a cancel).
export fn cleanup() void {
    if (labd.VoltageSource.open_("psu")) |psu| psu.setVoltage(0) catch {} else |_| {}
    if (labd.Switchable.open_("psu")) |output| output.setOn(false) catch {} else |_| {}
    labd.log(1, "supply off");
}
