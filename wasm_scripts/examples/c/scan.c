/* Stage scan in C: move across the beam, read the meter and snap the camera at each
 * point (a table row: position, power, spot_x), report where the power peaked. Arguments: start, stop (mm), steps.
 * Grants: stage:Movable meter:Readable camera:FrameProducer */
#include "labd.h"

int32_t run(void) {
    int32_t stage = labd_open("stage", LABD_MOVABLE);
    LABD_TRY(stage);
    int32_t meter = labd_open("meter", LABD_READABLE);
    LABD_TRY(meter);
    int32_t camera = labd_open("camera", LABD_FRAME_PRODUCER);
    LABD_TRY(camera);

    double start = labd_arg_or(LABD_STR("start"), 2.0);
    double stop = labd_arg_or(LABD_STR("stop"), 4.0);
    int32_t steps = (int32_t)labd_arg_or(LABD_STR("steps"), 21);
    if (steps < 2) return LABD_E_INVAL;

    double best = -1e300, best_x = 0, best_spot = 0;
    for (int32_t i = 0; i < steps; i++) {
        labd_reading_v1 position, power;
        labd_frame_stats_v1 stats;
        LABD_TRY(labd_movable_move_abs(stage, start + (stop - start) * i / (steps - 1)));
        LABD_TRY(labd_movable_wait_settled(stage, 0, &position, sizeof position));
        LABD_TRY(labd_readable_read(meter, &power, sizeof power));
        int32_t frame = labd_frame_snap(camera);
        LABD_TRY(frame);
        LABD_TRY(labd_frame_stats(frame, &stats, sizeof stats));
        labd_frame_release(frame);
        LABD_TRY(LABD_ROW("position,power,spot_x", position.value, power.value, stats.centroid_x));
        if (power.value > best) {
            best = power.value;
            best_x = position.value;
            best_spot = stats.centroid_x;
        }
        LABD_TRY(labd_checkpoint());
    }
    labd_result("peak_position", best_x);
    labd_result("peak_power", best);
    labd_result("spot_x_at_peak", best_spot);
    return 0;
}
