// Parameters in Go: tune the power meter's wavelength correction, read the power there,
// and leave the meter as it was found. Arguments: wavelength (a quantity, "1064 nm" or
// "1.064 um"; default 1064 nm). Grants: meter:Configurable,Readable
package main

import (
	"fmt"

	"labd"
)

func tune() (err error) {
	meter, err := labd.OpenConfigurable("meter")
	if err != nil {
		return err
	}
	sensor, err := labd.OpenReadable("meter")
	if err != nil {
		return err
	}
	wanted, ok := labd.ArgStr("wavelength")
	if !ok {
		wanted = "1064 nm"
	}
	before, err := meter.GetF64("wavelength")
	if err != nil {
		return err
	}
	// However the rest goes, leave the meter at the wavelength it was found at.
	defer func() {
		if restore := meter.SetF64("wavelength", before); err == nil {
			err = restore
		}
		if err == nil {
			err = labd.Result("restored", before)
		}
	}()
	// text takes a quantity in any length unit; the meter's unit is nm
	if err := meter.SetText("wavelength", wanted); err != nil {
		return err
	}
	now, err := meter.GetF64("wavelength")
	if err != nil {
		return err
	}
	text, err := meter.GetText("wavelength")
	if err != nil {
		return err
	}
	fmt.Println("meter at", text)
	power, err := sensor.Read()
	if err != nil {
		return err
	}
	if err := labd.Result("wavelength", now); err != nil {
		return err
	}
	return labd.Result("power", power.Value)
}

//go:wasmexport run
func run() int32 { return labd.Status(tune()) }

func main() {}
