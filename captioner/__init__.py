"""The OmniCaptioner model: task-type prompts, training, batched inference, caption data generation."""
