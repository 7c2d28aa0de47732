"""FruitOps serving."""
