"""Pure logic: canonical hashing, validation, the diff and the guard. No AWS, no I/O of state."""
