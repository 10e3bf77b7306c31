// Imported first by the benchmark runner, before anything creates a logger: the in-process
// agents and drivers log at info level, which would bury the figures. VMOVE_LOG_LEVEL overrides.
process.env.VMOVE_LOG_LEVEL ??= 'warn';
