// Stage scan in Go: move across the beam, read the meter and snap the camera at each
// point (a table row: position, power, spot_x), report where the power peaked. Arguments: start, stop (mm), steps.
// Grants: stage:Movable meter:Readable camera:FrameProducer
package main

import (
	"fmt"
	"math"

	"labd"
)

func scan() error {
	stage, err := labd.OpenMovable("stage")
	if err != nil {
		return err
	}
	meter, err := labd.OpenReadable("meter")
	if err != nil {
		return err
	}
	camera, err := labd.OpenFrameProducer("camera")
	if err != nil {
		return err
	}
	start := labd.ArgF64Or("start", 2)
	stop := labd.ArgF64Or("stop", 4)
	steps := int(labd.ArgF64Or("steps", 21))
	if steps < 2 {
		return fmt.Errorf("steps must be at least 2, not %d", steps)
	}
	best, bestX, bestSpot := math.Inf(-1), 0.0, 0.0
	for i := range steps {
		if err := stage.MoveAbs(start + (stop-start)*float64(i)/float64(steps-1)); err != nil {
			return err
		}
		position, err := stage.WaitSettled(0)
		if err != nil {
			return err
		}
		power, err := meter.Read()
		if err != nil {
			return err
		}
		spot, err := centroidX(camera)
		if err != nil {
			return err
		}
		if err := labd.Row("position,power,spot_x", position.Value, power.Value, spot); err != nil {
			return err
		}
		if power.Value > best {
			best, bestX, bestSpot = power.Value, position.Value, spot
		}
		if err := labd.Checkpoint(); err != nil {
			return err
		}
	}
	fmt.Printf("peak %.3g W at %.3f mm\n", best, bestX)
	return firstError(
		labd.Result("peak_position", bestX),
		labd.Result("peak_power", best),
		labd.Result("spot_x_at_peak", bestSpot),
	)
}

func centroidX(camera labd.FrameProducer) (float64, error) {
	frame, err := camera.Snap()
	if err != nil {
		return 0, err
	}
	defer frame.Release()
	stats, err := frame.Stats()
	return stats.CentroidX, err
}

// firstError is the first of errs that is not nil.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

//go:wasmexport run
func run() int32 { return labd.Status(scan()) }

func main() {} // a reactor: labd calls run, never main
