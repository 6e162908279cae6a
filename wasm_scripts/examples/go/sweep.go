// Temperature sweep in Go: step the supply voltage, let the sample settle, read the
// thermometer (a table row: voltage, temperature). Arguments: volts_max, steps, settle_ms.
// However the run ends, its cleanup switches the supply off.
// Grants: psu:VoltageSource,Switchable thermo:TemperatureSensor
package main

import (
	"fmt"
	"time"

	"labd"
)

func sweep() error {
	psu, err := labd.OpenVoltageSource("psu")
	if err != nil {
		return err
	}
	output, err := labd.OpenSwitchable("psu")
	if err != nil {
		return err
	}
	thermo, err := labd.OpenTemperatureSensor("thermo")
	if err != nil {
		return err
	}
	voltsMax := labd.ArgF64Or("volts_max", 5)
	steps := int(labd.ArgF64Or("steps", 6))
	settle := time.Duration(labd.ArgF64Or("settle_ms", 200)) * time.Millisecond
	if steps < 2 {
		return fmt.Errorf("steps must be at least 2, not %d", steps)
	}
	first, err := thermo.Temperature()
	if err != nil {
		return err
	}
	if err := output.SetOn(true); err != nil {
		return err
	}
	last := first
	for i := range steps {
		volts := voltsMax * float64(i) / float64(steps-1)
		if err := psu.SetVoltage(volts); err != nil {
			return err
		}
		time.Sleep(settle) // a WASI sleep: cancellable, like labd.SleepMs
		if last, err = thermo.Temperature(); err != nil {
			return err
		}
		fmt.Printf("%4.1f V: %.2f K\n", volts, last.Value)
		if err := labd.Row("voltage,temperature", volts, last.Value); err != nil {
			return err
		}
		if err := labd.Checkpoint(); err != nil {
			return err
		}
	}
	return labd.Result("temperature_rise", last.Value-first.Value)
}

//go:wasmexport run
func run() int32 { return labd.Status(sweep()) }

// cleanup is called after run however it ended (an error, a trap, the deadline, a
// cancel): a deferred call would not run when the deadline stops the script. After a
// trap the Go runtime may be in the middle of anything, so this makes labd calls only:
// no fmt, no allocation, no goroutines (docs/scripting.md, "How a run ends").
//
//go:wasmexport cleanup
func cleanup() {
	if psu, err := labd.OpenVoltageSource("psu"); err == nil {
		psu.SetVoltage(0)
	}
	if output, err := labd.OpenSwitchable("psu"); err == nil {
		output.SetOn(false)
	}
	labd.Log(labd.LevelInfo, "supply off")
}

func main() {} // a reactor: labd calls run, never main
