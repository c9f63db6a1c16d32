// Package limit is the bandwidth limit of a grid: a remote.Store wrapper
// (Wrap) that holds uploads (Put) and downloads (Get) to rates shared by
// every store wrapped with the same Limits, and a schedule (ParseSchedule)
// that says which rates are in force at what time of day.
//
// # What it promises
//
//   - Rates change live (Limits.Set): calls waiting for bandwidth pick up
//     the new rate; 0 is unlimited.
//   - Over any window long against the burst (Burst, 1 MiB), the bytes
//     passed to Put, or read by Get, stay within the rate plus one burst.
//     A call waits for its bytes in steps of 64 KiB before it starts
//     (nothing is split on the wire), and calls waiting at once take
//     turns a step at a time: a small call is not held behind the whole
//     of the large calls ahead of it.
//   - A waiting call returns ctx.Err() when ctx ends; it then takes no
//     bandwidth.
//   - Stat, List, Delete and Info pass through unlimited (they carry no
//     data).
//
// It is one of the wrappers composed where the grid is built
// (cmd/meshdrive/grid.go), like retry and fault injection
// (remote/faulty): backends know nothing of it.
package limit
