package routes

// BackoffDelay exposes backoffDelay to tests.
var BackoffDelay = backoffDelay
