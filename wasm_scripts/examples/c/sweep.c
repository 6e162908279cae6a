/* Temperature sweep in C: step the supply voltage, let the sample settle, read the
 * thermometer (a table row: voltage, temperature). Arguments: volts_max, steps, settle_ms.
 * However the run ends, its cleanup switches the supply off.
 * Grants: psu:VoltageSource,Switchable thermo:TemperatureSensor */
#include "labd.h"

int32_t run(void) {
    int32_t psu = labd_open("psu", LABD_VOLTAGE_SOURCE);
    LABD_TRY(psu);
    int32_t output = labd_open("psu", LABD_SWITCHABLE);
    LABD_TRY(output);
    int32_t thermo = labd_open("thermo", LABD_TEMPERATURE_SENSOR);
    LABD_TRY(thermo);

    double volts_max = labd_arg_or(LABD_STR("volts_max"), 5.0);
    int32_t steps = (int32_t)labd_arg_or(LABD_STR("steps"), 6);
    int32_t settle_ms = (int32_t)labd_arg_or(LABD_STR("settle_ms"), 200);
    if (steps < 2) return LABD_E_INVAL;

    labd_reading_v1 t;
    LABD_TRY(labd_temperature_read(thermo, &t, sizeof t));
    double first = t.value;
    LABD_TRY(labd_switch_set(output, 1));
    for (int32_t i = 0; i < steps; i++) {
        double volts = volts_max * i / (steps - 1);
        LABD_TRY(labd_supply_set_voltage(psu, volts));
        LABD_TRY(labd_sleep_ms(settle_ms));
        LABD_TRY(labd_temperature_read(thermo, &t, sizeof t));
        LABD_TRY(LABD_ROW("voltage,temperature", volts, t.value));
        LABD_TRY(labd_checkpoint());
    }
    labd_result("temperature_rise", t.value - first);
    return 0;
}

/* Called after run() however it ended (an error, a trap, the deadline, a cancel). */
LABD_EXPORT(cleanup) void cleanup(void) {
    labd_supply_set_voltage(labd_open("psu", LABD_VOLTAGE_SOURCE), 0);
    labd_switch_set(labd_open("psu", LABD_SWITCHABLE), 0);
    labd_info("supply off");
}
