"""FruitOps models."""
