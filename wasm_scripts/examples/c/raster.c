/* 2-D raster in C: for each heater voltage on the supply, scan the stage across the beam
 * and read the meter, one table row per point: voltage, position, power (how the beam
 * moves as the sample warms). Arguments: volts_max, volt_steps, start, stop (mm), steps,
 * settle_ms. However the run ends, its cleanup switches the supply off and parks the stage.
 * Grants: psu:VoltageSource,Switchable stage:Movable meter:Readable */
#include "labd.h"

int32_t run(void) {
    int32_t psu = labd_open("psu", LABD_VOLTAGE_SOURCE);
    LABD_TRY(psu);
    int32_t output = labd_open("psu", LABD_SWITCHABLE);
    LABD_TRY(output);
    int32_t stage = labd_open("stage", LABD_MOVABLE);
    LABD_TRY(stage);
    int32_t meter = labd_open("meter", LABD_READABLE);
    LABD_TRY(meter);

    double volts_max = labd_arg_or(LABD_STR("volts_max"), 6.0);
    int32_t volt_steps = (int32_t)labd_arg_or(LABD_STR("volt_steps"), 3);
    double start = labd_arg_or(LABD_STR("start"), 2.0);
    double stop = labd_arg_or(LABD_STR("stop"), 4.0);
    int32_t steps = (int32_t)labd_arg_or(LABD_STR("steps"), 11);
    int32_t settle_ms = (int32_t)labd_arg_or(LABD_STR("settle_ms"), 100);
    if (volt_steps < 2 || steps < 2) return LABD_E_INVAL;

    LABD_TRY(labd_switch_set(output, 1));
    for (int32_t v = 0; v < volt_steps; v++) {
        double volts = volts_max * v / (volt_steps - 1);
        LABD_TRY(labd_supply_set_voltage(psu, volts));
        LABD_TRY(labd_sleep_ms(settle_ms));
        for (int32_t i = 0; i < steps; i++) {
            labd_reading_v1 position, power;
            LABD_TRY(labd_movable_move_abs(stage, start + (stop - start) * i / (steps - 1)));
            LABD_TRY(labd_movable_wait_settled(stage, 0, &position, sizeof position));
            LABD_TRY(labd_readable_read(meter, &power, sizeof power));
            LABD_TRY(LABD_ROW("voltage,position,power", volts, position.value, power.value));
            LABD_TRY(labd_checkpoint());
        }
    }
    return 0;
}

/* Called after run() however it ended (an error, a trap, the deadline, a cancel). */
LABD_EXPORT(cleanup) void cleanup(void) {
    labd_switch_set(labd_open("psu", LABD_SWITCHABLE), 0);
    labd_movable_move_abs(labd_open("stage", LABD_MOVABLE), labd_arg_or(LABD_STR("start"), 2.0));
    labd_info("raster cleanup: supply output off, stage parked at the start");
}
