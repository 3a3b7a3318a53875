"""Text the emulator shows: chat templates, synthetic output, structured (JSON, tool) content."""
