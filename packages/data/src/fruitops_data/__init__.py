"""FruitOps data."""
