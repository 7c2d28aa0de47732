"""FruitOps monitoring."""
