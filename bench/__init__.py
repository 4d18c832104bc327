"""`make bench`: the product's claims, measured side by side in one run (not part of the product)."""
