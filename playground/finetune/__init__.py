"""Fine-tuning: validate, estimate, upload and start jobs; follow their events, metrics and checkpoints."""
