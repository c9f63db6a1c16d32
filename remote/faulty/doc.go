// Package faulty is a remote.Store wrapper that injects failures, for
// tests: chosen calls (by operation, object-name prefix and probability)
// fail with a given error, are delayed, hang until their ctx ends, or see
// corrupted bytes (flipped in what a Get returns, or in a copy of what a
// Put sends on). SetDown makes every call fail with remote.ErrUnavailable,
// like a stopped node.
//
// Rules change at runtime (SetRules, AddRule, Clear, SetDown) and a Store
// is safe for concurrent use; each call decides its faults when it starts.
// Options.Seed makes the random choices repeatable. Stats counts what was
// injected, so a test can tell that a fault really happened.
//
// Retry, limits and fault injection are wrappers around a Store (see
// STYLE.md); this one wraps any backend, including a node Client or the
// store a node Server serves.
package faulty
