"""Training: seeding, optimizer and schedule, the epoch loop and its hook points."""
