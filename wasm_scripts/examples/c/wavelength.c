/* Parameters in C: tune the power meter's wavelength correction, read the power there,
 * and leave the meter as it was found. Arguments: wavelength (a quantity, "1064 nm" or
 * "1.064 um"; default 1064 nm). Grants: meter:Configurable,Readable */
#include "labd.h"

int32_t run(void) {
    int32_t meter = labd_open("meter", LABD_CONFIGURABLE);
    LABD_TRY(meter);
    int32_t sensor = labd_open("meter", LABD_READABLE);
    LABD_TRY(sensor);

    char wanted[64] = "1064 nm";
    int32_t n = labd_arg_str(LABD_STR("wavelength"), wanted, sizeof wanted);
    if (n > (int32_t)sizeof wanted) return LABD_E_INVAL;
    int32_t wanted_len = n >= 0 ? n : 7;

    double before, now;
    LABD_TRY(labd_param_get(meter, "wavelength", &before));
    /* text takes a quantity in any length unit; the meter's unit is nm */
    LABD_TRY(labd_param_set_text(meter, LABD_STR("wavelength"), wanted, wanted_len));
    LABD_TRY(labd_param_get(meter, "wavelength", &now));
    char text[64];
    int32_t len = labd_param_get_text(meter, LABD_STR("wavelength"), text, sizeof text);
    LABD_TRY(len);
    labd_log(LABD_INFO, text, len < (int32_t)sizeof text ? len : (int32_t)sizeof text);

    labd_reading_v1 power;
    LABD_TRY(labd_readable_read(sensor, &power, sizeof power));
    labd_result("wavelength", now);
    labd_result("power", power.value);
    LABD_TRY(labd_param_set(meter, "wavelength", before));
    labd_result("restored", before);
    return 0;
}
