//! Parameters in Zig: tune the power meter's wavelength correction, read the power there,
//! and leave the meter as it was found. Arguments: wavelength (a quantity, "1064 nm" or
//! "1.064 um"; default 1064 nm). Grants: meter:Configurable,Readable
const labd = @import("labd");

fn tune() labd.Error!void {
    const meter = try labd.Configurable.open_("meter");
    const sensor = try labd.Readable.open_("meter");
    var arg: [64]u8 = undefined;
    const wanted = labd.argStr("wavelength", &arg) orelse "1064 nm";

    const before = try meter.getF64("wavelength");
    // text takes a quantity in any length unit; the meter's unit is nm
    try meter.setText("wavelength", wanted);
    const now = try meter.getF64("wavelength");
    var text: [64]u8 = undefined;
    labd.log(1, try meter.getText("wavelength", &text));

    const power = try sensor.read();
    try labd.result("wavelength", now);
    try labd.result("power", power.value);
    try meter.setF64("wavelength", before);
    try labd.result("restored", before);
}

export fn run() i32 {
    return labd.status(tune());
}
