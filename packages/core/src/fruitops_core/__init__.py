"""FruitOps core."""
