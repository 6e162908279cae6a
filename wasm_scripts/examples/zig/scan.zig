//! Stage scan in Zig: move across the beam, read the meter and snap the camera at each
//! point (a table row: position, power, spot_x), report where the power peaked. Arguments: start, stop (mm), steps.
//! Grants: stage:Movable meter:Readable camera:FrameProducer
const labd = @import("labd");

fn scan() labd.Error!void {
    const stage = try labd.Movable.open_("stage");
    const meter = try labd.Readable.open_("meter");
    const camera = try labd.FrameProducer.open_("camera");
    const start = labd.argF64("start") orelse 2.0;
    const stop = labd.argF64("stop") orelse 4.0;
    const steps: i32 = @intFromFloat(labd.argF64("steps") orelse 21.0);
    if (steps < 2) return labd.Error.Inval;
    var best: f64 = -1e300;
    var best_x: f64 = 0;
    var best_spot: f64 = 0;
    var i: i32 = 0;
    while (i < steps) : (i += 1) {
        const fraction = @as(f64, @floatFromInt(i)) / @as(f64, @floatFromInt(steps - 1));
        try stage.moveAbs(start + (stop - start) * fraction);
        const position = try stage.waitSettled(0);
        const power = try meter.read();
        const frame = try camera.snap();
        defer frame.release();
        const stats = try frame.stats();
        _ = try labd.row("position,power,spot_x", &.{ position.value, power.value, stats.centroid_x });
        if (power.value > best) {
            best = power.value;
            best_x = position.value;
            best_spot = stats.centroid_x;
        }
        try labd.checkpoint();
    }
    try labd.result("peak_position", best_x);
    try labd.result("peak_power", best);
    try labd.result("spot_x_at_peak", best_spot);
}

export fn run() i32 {
    return labd.status(scan());
}
