;; Stage scan in raw WebAssembly text: move the stage across the beam, read the power
;; meter and snap the camera at each point (a table row: position, power, spot_x),
;; report where the power peaked.
;; Arguments (all optional): start, stop (mm), steps.
;; Grants needed: stage:Movable meter:Readable camera:FrameProducer
(module
  (import "labd_v1" "cap_get" (func $cap_get (param i32 i32 i32) (result i32)))
  (import "labd_v1" "movable_move_abs" (func $move_abs (param i32 f64) (result i32)))
  (import "labd_v1" "movable_wait_settled" (func $wait_settled (param i32 f64 i32 i32) (result i32)))
  (import "labd_v1" "readable_read" (func $read (param i32 i32 i32) (result i32)))
  (import "labd_v1" "frame_snap" (func $snap (param i32) (result i32)))
  (import "labd_v1" "frame_stats" (func $stats (param i32 i32 i32) (result i32)))
  (import "labd_v1" "frame_release" (func $release (param i32) (result i32)))
  (import "labd_v1" "result_f64" (func $result (param i32 i32 f64) (result i32)))
  (import "labd_v1" "arg_f64" (func $arg_f64 (param i32 i32 i32) (result i32)))
  (import "labd_v1" "checkpoint" (func $checkpoint (result i32)))
  (import "labd_v1" "result_row" (func $row (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)

  (data (i32.const 0) "stage")           ;; 5 bytes
  (data (i32.const 8) "meter")           ;; 5
  (data (i32.const 16) "camera")         ;; 6
  (data (i32.const 24) "peak_position")  ;; 13
  (data (i32.const 40) "peak_power")     ;; 10
  (data (i32.const 56) "spot_x_at_peak") ;; 14
  (data (i32.const 72) "start")          ;; 5
  (data (i32.const 80) "stop")           ;; 4
  (data (i32.const 88) "steps")          ;; 5
  (data (i32.const 96) "position,power,spot_x")  ;; 21
  ;; 128: labd_reading_v1 (16 bytes), 160: labd_frame_stats_v1 (64), 256: an f64 argument,
  ;; 272: a row of 3 f64

  (global $MOVABLE i32 (i32.const 1))
  (global $READABLE i32 (i32.const 3))
  (global $FRAME_PRODUCER i32 (i32.const 4))

  ;; An argument, or the default when it was not given.
  (func $arg (param $ptr i32) (param $len i32) (param $default f64) (result f64)
    (if (result f64) (i32.eqz (call $arg_f64 (local.get $ptr) (local.get $len) (i32.const 256)))
      (then (f64.load (i32.const 256)))
      (else (local.get $default))))

  (func (export "run") (result i32)
    (local $stage i32) (local $meter i32) (local $camera i32) (local $frame i32) (local $rc i32)
    (local $start f64) (local $stop f64) (local $steps i32) (local $i i32)
    (local $x f64) (local $power f64) (local $best f64) (local $best_x f64) (local $best_spot f64)

    (local.set $stage (call $cap_get (i32.const 0) (i32.const 5) (global.get $MOVABLE)))
    (if (i32.lt_s (local.get $stage) (i32.const 0)) (then (return (local.get $stage))))
    (local.set $meter (call $cap_get (i32.const 8) (i32.const 5) (global.get $READABLE)))
    (if (i32.lt_s (local.get $meter) (i32.const 0)) (then (return (local.get $meter))))
    (local.set $camera (call $cap_get (i32.const 16) (i32.const 6) (global.get $FRAME_PRODUCER)))
    (if (i32.lt_s (local.get $camera) (i32.const 0)) (then (return (local.get $camera))))

    (local.set $start (call $arg (i32.const 72) (i32.const 5) (f64.const 2.0)))
    (local.set $stop (call $arg (i32.const 80) (i32.const 4) (f64.const 4.0)))
    (local.set $steps (i32.trunc_f64_s (call $arg (i32.const 88) (i32.const 5) (f64.const 21))))
    (if (i32.lt_s (local.get $steps) (i32.const 2)) (then (return (i32.const -1))))
    (local.set $best (f64.const -1e300))

    (loop $points
      (local.set $x (f64.add (local.get $start)
        (f64.div (f64.mul (f64.sub (local.get $stop) (local.get $start)) (f64.convert_i32_s (local.get $i)))
                 (f64.convert_i32_s (i32.sub (local.get $steps) (i32.const 1))))))
      (local.set $rc (call $move_abs (local.get $stage) (local.get $x)))
      (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
      (local.set $rc (call $wait_settled (local.get $stage) (f64.const 0) (i32.const 128) (i32.const 16)))
      (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
      (local.set $x (f64.load (i32.const 128)))
      (local.set $rc (call $read (local.get $meter) (i32.const 128) (i32.const 16)))
      (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
      (local.set $power (f64.load (i32.const 128)))
      (local.set $frame (call $snap (local.get $camera)))
      (if (i32.lt_s (local.get $frame) (i32.const 0)) (then (return (local.get $frame))))
      (local.set $rc (call $stats (local.get $frame) (i32.const 160) (i32.const 64)))
      (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
      (drop (call $release (local.get $frame)))
      (f64.store (i32.const 272) (local.get $x))
      (f64.store (i32.const 280) (local.get $power))
      (f64.store (i32.const 288) (f64.load (i32.const 208)))
      (local.set $rc (call $row (i32.const 96) (i32.const 21) (i32.const 272) (i32.const 3)))
      (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
      (if (f64.gt (local.get $power) (local.get $best))
        (then
          (local.set $best (local.get $power))
          (local.set $best_x (local.get $x))
          (local.set $best_spot (f64.load (i32.const 208)))))  ;; stats.centroid_x at offset 48
      (local.set $rc (call $checkpoint))
      (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $points (i32.lt_s (local.get $i) (local.get $steps))))

    (drop (call $result (i32.const 24) (i32.const 13) (local.get $best_x)))
    (drop (call $result (i32.const 40) (i32.const 10) (local.get $best)))
    (drop (call $result (i32.const 56) (i32.const 14) (local.get $best_spot)))
    (i32.const 0)))
