// Package sample generates realistic exchange events for tests, benchmarks
// and the demo: a monthly allowance batch across the six banks, data-sea
// death files, job-library pushes, funeral-home pushes and village-bank
// answers, with failures, retries, dead letters and lineage.
package sample
