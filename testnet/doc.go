// Package testnet runs cunzheng networks for tests and benchmarks: real
// node processes started from the cunzheng binary, with their own Pebble
// directories on disk, driven over loopback HTTP. Fault scenarios (SIGKILL
// at random moments, a disk running full) and the benchmarks of the issues
// live in its tests.
package testnet
