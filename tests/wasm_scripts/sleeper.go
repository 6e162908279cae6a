// A test guest for the Go port's WASI: prints, then sleeps in time.Sleep for --arg ms;
// with --arg panic=TEXT it panics instead.
package main

import (
	"fmt"
	"os"
	"time"

	"labd"
)

//go:wasmexport run
func run() int32 {
	if text, ok := labd.ArgStr("panic"); ok {
		panic(text)
	}
	ms := labd.ArgF64Or("ms", 10)
	fmt.Printf("sleeping for %g ms\n", ms)
	fmt.Fprintln(os.Stderr, "a line to stderr")
	time.Sleep(time.Duration(ms) * time.Millisecond)
	fmt.Println("woke up")
	return 0
}

func main() {}
