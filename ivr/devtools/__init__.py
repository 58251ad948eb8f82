"""Developer tools: the caller emulator and simulator, prompt checks and timings."""
